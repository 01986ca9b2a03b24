"""Training on Spark MLlib's ALS (`train --engine spark`): interactions read where they live at
scale (Parquet or CSV on disk or S3, uro's database through JDBC), ids mapped on the cluster,
`pyspark.ml.recommendation.ALS` with implicit preferences, and the result exported into the same
artifact format `train` publishes.

pyspark is an optional extra (`pip install 'reco-sidecar[spark]'`) and needs Java 17 or 21;
nothing here is imported unless `--engine spark` is asked for.
"""
