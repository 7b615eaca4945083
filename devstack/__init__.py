"""The local AWS stand-in: moto's server, resources, S3 event delivery, the API. Never shipped."""
