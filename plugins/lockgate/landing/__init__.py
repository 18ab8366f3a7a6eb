"""Files landing zone: TSV/CSV files (gzip or plain) that an application drops in a
folder or an S3 prefix, taken exactly once each and converted to Parquet in the raw
lake, then validated, loaded and published like a database extract.

- :mod:`~lockgate.landing.zone`: where the files are and which are ready to take;
- :mod:`~lockgate.landing.ledger`: ``lockgate.landed_files``, every file taken (key,
  size, checksum, run, rows), so a file is taken once and an interval re-reads its own;
- :mod:`~lockgate.landing.convert`: one file → Parquet with DuckDB, bad lines set aside
  with their line number, a truncated gzip refused;
- :mod:`~lockgate.landing.extract`: one run's batch, sealed like any raw version.
"""
