"""Partition definitions shared across areas.

Both dimensions are dynamic: ingest batches appear as uploads land and disappear when
retention or erasure removes all their data (open-source Dagster cannot wipe single
partitions of static definitions; deleting a dynamic key is the supported path).
"""

import dagster as dg

ingest_batches = dg.DynamicPartitionsDefinition(name="ingest_batches")
embed_versions = dg.DynamicPartitionsDefinition(name="embed_versions")

# MultiPartitionsDefinition orders dimensions by name: keys print as "<batch>|<embed_version>".
embeddings_partitions = dg.MultiPartitionsDefinition({"batch": ingest_batches, "embed_version": embed_versions})


def embeddings_key(version: str, batch_id: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"batch": batch_id, "embed_version": version})
