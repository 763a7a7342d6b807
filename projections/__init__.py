"""mot: projections."""
