"""The raw lake, in a local folder or an S3 bucket (see DESIGN.md): layout, sealed
versions, retention. ``from lockgate import lake`` gives the whole API."""

from lockgate.lake.layout import MANIFEST, RawLocation, lake_root_of, plan_path, run_folder, stamp
from lockgate.lake.retention import prune
from lockgate.lake.storage import LakePath, is_local, lake_path, local_copies, remove, write_json_atomic
from lockgate.lake.versions import (
    FORMAT_VERSION,
    clean_temp,
    data_files,
    key_files,
    latest_per_interval,
    link_version,
    read_manifest,
    seal,
    sealed_runs,
    sealed_versions,
    sha256_file,
    verify,
)

__all__ = [
    "FORMAT_VERSION", "MANIFEST", "LakePath", "RawLocation", "clean_temp", "data_files", "is_local", "key_files",
    "lake_path", "lake_root_of", "local_copies", "latest_per_interval", "link_version", "plan_path", "prune", "read_manifest",
    "remove", "run_folder", "seal", "sealed_runs", "sealed_versions", "sha256_file", "stamp", "verify",
    "write_json_atomic",
]
