"""mot: adapters/sources."""
