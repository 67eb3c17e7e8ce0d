"""data room of taptr_ros (see DESIGN.md section 1).

* ``synthetic``  sequences with exact tracks and occlusion (``generate_sequence``, ``preset``)
* ``motion``     the smooth random camera homographies and object affines they use
* ``textures``   photo (scikit-image samples) and procedural textures, alpha masks
* ``splits``     the fixed held-out evaluation splits (``HELDOUT``)
* ``tapvid``     TAP-Vid pickle layout: ``load_tapvid``, ``save_tapvid``, ``TapVidVideo``
* ``video``      video files (``read_video``, ``iter_frames``, ``write_video``) and ``draw_tracks``
* ``errors``     ``DataError`` and its subclasses
"""
