"""From annotation to structure: picking, extraction, 2D cleaning, subtomogram averaging, FSC."""
