"""mot: service."""
