"""mot: cli."""
