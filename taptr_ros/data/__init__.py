"""data room of taptr_ros (DESIGN.md section 1), at the bottom: imports no other room.

* ``synthetic``  sequences with exact tracks and occlusion (``generate_sequence``, ``preset``)
* ``synthetic_config``  their sizes, motion and difficulty; the named presets
* ``scene``      layers, their motions and the exact tracks of points on them
* ``render``     frames drawn from a scene, photometric changes (blur, motion blur, noise)
* ``motion``     the smooth random camera homographies and object affines they use
* ``textures``   photographs (scikit-image samples, video frames), procedural textures, masks
* ``pairs``      two views of one photograph with exact correspondence (``make_pair``): pre-training
* ``splits``     the fixed held-out evaluation splits (``HELDOUT``)
* ``tapvid``     TAP-Vid pickle layout: ``load_tapvid``, ``save_tapvid``, ``TapVidVideo``
* ``video``      video files (``read_video``, ``iter_frames``, ``write_video``) and ``draw_tracks``
* ``errors``     ``DataError`` and its subclasses
"""
