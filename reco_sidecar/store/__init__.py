"""The model store: versions on S3-compatible object storage, published atomically by
`train`/`import-librecommender` and followed by `serve --model-store` into a local cache.

Layout under `s3://BUCKET/PREFIX/`:

- `<model>/<version>/<file>`: the version's files, `manifest.json` among them;
- `<model>/<version>/PUBLISHED`: the marker, uploaded last; a version without it is invisible;
- `<model>/CURRENT`: the version replicas serve (a decimal number); rollback rewrites it.
"""
