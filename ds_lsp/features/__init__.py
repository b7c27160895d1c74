"""One module per feature; each registers its handlers from `setup(server)`."""
