"""Hospital information system integration: the adapter interface, and the reference HIS the product ships with
so it runs with no hospital attached."""
