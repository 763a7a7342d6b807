"""mot: adapters/stores."""
