"""The pure image core: bytes and variant specs in, encoded variants and metadata out.

Imports Pillow, never boto3. Import it lazily from AWS code paths: Pillow costs cold-start time.
"""
