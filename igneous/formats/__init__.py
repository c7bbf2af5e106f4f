"""Binary formats written by igneous (multi-resolution meshes, ...)."""
