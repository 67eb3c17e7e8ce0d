"""eval room of taptr_ros (see DESIGN.md section 1)."""
