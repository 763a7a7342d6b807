"""mot: adapters."""
