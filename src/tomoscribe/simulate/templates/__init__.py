"""Data package: the bundled template maps and their manifest (see ``template_library``)."""
