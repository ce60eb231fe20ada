"""One module per family of S3 operations; each handler takes an S3Request and answers."""
