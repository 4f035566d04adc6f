"""agents package (see DESIGN.md); built in later issues."""
