"""The embed_version registry: immutable version records with a status lifecycle.

registered -> building -> validated -> active -> retired. Exactly one version is active
(a partial unique index in the ledger). Activation is one ledger transaction.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import sqlalchemy as sa

from . import events
from .chunking import ChunkerParams
from .models import ModelSpec, model_dims_from_config, model_name, weights_fingerprint
from .ids import VERSION_NAME_RE, require, sha256_hex
from .ledger import Ledger, embed_versions, iso

STATUSES = ("registered", "building", "validated", "active", "retired")
TRANSITIONS = {
    "registered": {"building", "validated"},
    "building": {"building", "validated", "registered"},
    "validated": {"active", "building", "retired"},
    "active": {"retired"},
    "retired": {"active", "building"},
}


class VersionConflict(ValueError):
    """A version name re-declared with different parameters, or an illegal transition."""


@dataclass(frozen=True)
class EmbedVersionSpec:
    name: str
    model_path: str
    max_seq_length: int = 256
    normalize: bool = True
    chunk_size: int = 500
    chunk_overlap: int = 100
    backend: str = "torch"  # torch | onnx | onnx-int8 (onnx_backend.BACKENDS)
    quantization: str = ""  # onnx-int8 only: canonical JSON of the quantization settings

    def __post_init__(self):
        from .onnx_backend import canonical_quantization

        require(VERSION_NAME_RE, self.name, "embed_version name")
        ChunkerParams(self.chunk_size, self.chunk_overlap)  # validates
        # canonical form (defaults filled, keys sorted): the same settings always spell the same version
        object.__setattr__(self, "quantization", canonical_quantization(self.backend, self.quantization))

    @property
    def model(self) -> ModelSpec:
        return ModelSpec(self.model_path, self.max_seq_length, self.normalize, self.backend, self.quantization)

    @property
    def chunker(self) -> ChunkerParams:
        return ChunkerParams(self.chunk_size, self.chunk_overlap)


@dataclass(frozen=True)
class EmbedVersion:
    name: str
    model_path: str
    model_name: str
    weights_fingerprint: str
    dims: int
    normalize: bool
    max_seq_length: int
    chunk_size: int
    chunk_overlap: int
    params_hash: str
    status: str
    registered_at: str
    building_at: str | None = None
    validated_at: str | None = None
    activated_at: str | None = None
    retired_at: str | None = None
    backend: str = "torch"
    quantization: str = ""

    @property
    def spec(self) -> EmbedVersionSpec:
        return EmbedVersionSpec(self.name, self.model_path, self.max_seq_length, self.normalize, self.chunk_size, self.chunk_overlap,
                                self.backend, self.quantization)

    @property
    def quantized(self) -> bool:
        from .onnx_backend import QUANTIZED

        return self.backend in QUANTIZED

    @property
    def model(self) -> ModelSpec:
        return self.spec.model

    @property
    def table(self) -> str:
        from .store import embeddings_table

        return embeddings_table(self.name)


def _meaning(spec: EmbedVersionSpec, fingerprint: str, dims: int) -> dict:
    """What a version *means*: if any of this changes, it is a different version.

    An onnx backend adds what its export is (backend, opset, export format, quantization
    settings: the export cache's key); a torch version means what it meant before backends
    existed, so versions registered then keep their params_hash.
    """
    meaning = {
        "weights_fingerprint": fingerprint,
        "dims": dims,
        "normalize": spec.normalize,
        "max_seq_length": spec.max_seq_length,
        "chunk_size": spec.chunk_size,
        "chunk_overlap": spec.chunk_overlap,
    }
    if spec.backend != "torch":
        from .onnx_backend import export_meaning

        meaning.update({k: v for k, v in export_meaning(fingerprint, spec.backend, spec.quantization).items() if k != "weights_fingerprint"})
    return meaning


class VersionRegistry:
    def __init__(self, ledger: Ledger):
        self.ledger = ledger

    def _row_to_version(self, r) -> EmbedVersion:
        d = {k: getattr(r, k) for k in EmbedVersion.__dataclass_fields__}
        d["backend"] = d["backend"] or "torch"  # rows registered before backends existed
        d["quantization"] = d["quantization"] or ""
        return EmbedVersion(**d)

    def get(self, name: str) -> EmbedVersion | None:
        with self.ledger.engine.connect() as conn:
            r = conn.execute(sa.select(embed_versions).where(embed_versions.c.name == name)).first()
        return self._row_to_version(r) if r else None

    def require(self, name: str) -> EmbedVersion:
        v = self.get(name)
        if v is None:
            raise KeyError(f"embed_version {name!r} is not registered (see `aisg versions list`)")
        return v

    def all(self) -> list[EmbedVersion]:
        with self.ledger.engine.connect() as conn:
            rows = conn.execute(sa.select(embed_versions).order_by(embed_versions.c.registered_at, embed_versions.c.name)).all()
        return [self._row_to_version(r) for r in rows]

    def active(self) -> EmbedVersion | None:
        with self.ledger.engine.connect() as conn:
            r = conn.execute(sa.select(embed_versions).where(embed_versions.c.status == "active")).first()
        return self._row_to_version(r) if r else None

    def register(self, spec: EmbedVersionSpec) -> tuple[EmbedVersion, bool]:
        """Register a version, or confirm it is registered with the same meaning.

        Returns (version, created). Re-declaring a name with other parameters raises
        VersionConflict: a version never silently changes meaning.
        """
        fingerprint = weights_fingerprint(spec.model_path)
        dims = model_dims_from_config(spec.model_path)
        meaning = _meaning(spec, fingerprint, dims)
        params_hash = sha256_hex(json.dumps(meaning, sort_keys=True))
        existing = self.get(spec.name)
        if existing is not None:
            if existing.params_hash != params_hash:
                old = _meaning(existing.spec, existing.weights_fingerprint, existing.dims)
                diff = {k: (old.get(k), meaning.get(k)) for k in sorted(set(meaning) | set(old)) if old.get(k) != meaning.get(k)}
                raise VersionConflict(
                    f"embed_version {spec.name!r} is already registered with different parameters "
                    f"{ {k: f'{a} -> {b}' for k, (a, b) in diff.items()} }; register a new name instead"
                )
            return existing, False
        now = iso()
        with self.ledger.begin() as conn:
            conn.execute(
                embed_versions.insert().values(
                    name=spec.name, model_path=spec.model_path, model_name=model_name(spec.model_path),
                    weights_fingerprint=fingerprint, dims=dims, normalize=spec.normalize,
                    max_seq_length=spec.max_seq_length, chunk_size=spec.chunk_size, chunk_overlap=spec.chunk_overlap,
                    params_hash=params_hash, status="registered", registered_at=now, backend=spec.backend, quantization=spec.quantization,
                )
            )
            events.record(self.ledger, events.EmbedVersionRegistered(name=spec.name, meaning=meaning), conn=conn)
        return self.require(spec.name), True

    def transition(self, name: str, status: str, conn=None) -> EmbedVersion:
        v = self.require(name)
        if status == v.status:
            return v
        if status not in TRANSITIONS[v.status]:
            raise VersionConflict(f"embed_version {name!r} cannot go from {v.status} to {status}")
        stamp = {"building": "building_at", "validated": "validated_at", "active": "activated_at", "retired": "retired_at", "registered": "registered_at"}[status]

        def _do(c):
            c.execute(embed_versions.update().where(embed_versions.c.name == name).values(status=status, **{stamp: iso()}))
            events.record(self.ledger, events.EmbedVersionTransition(name=name, from_status=v.status),
                          action=events.EmbedVersionTransition.action_for(status), conn=c)

        if conn is not None:
            _do(conn)
        else:
            with self.ledger.begin() as c:
                _do(c)
        return self.require(name)

    def activate(self, name: str, *, reason: str = "activate", require_validated: bool = True) -> EmbedVersion:
        """Switch the active version in one ledger transaction (old active -> retired)."""
        target = self.require(name)
        if target.status == "active":
            return target
        if require_validated and target.status not in ("validated", "retired"):
            raise VersionConflict(f"embed_version {name!r} is {target.status}; only a validated version can be activated")
        with self.ledger.begin() as conn:
            current = conn.execute(sa.select(embed_versions.c.name).where(embed_versions.c.status == "active")).scalar()
            if current:
                conn.execute(embed_versions.update().where(embed_versions.c.name == current).values(status="retired", retired_at=iso()))
            conn.execute(embed_versions.update().where(embed_versions.c.name == name).values(status="active", activated_at=iso()))
            events.record(self.ledger, events.EmbedVersionSwitch(name=name, previous=current), action=f"embed_version.{reason}", conn=conn)
        return self.require(name)

    def previous_active(self) -> EmbedVersion | None:
        """The version that was active before the current one (the rollback target)."""
        switches = [events.EmbedVersionSwitch.from_payload(e.details, e.action) for e in self.ledger.events("embed_version.")
                    if e.action in events.EmbedVersionSwitch.ACTIONS]
        active = self.active()
        for sw in reversed(switches):
            if sw.name == (active.name if active else None) and sw.previous:
                return self.get(sw.previous)
        return None


def default_v1_spec(model_path: str) -> EmbedVersionSpec:
    return EmbedVersionSpec(name="v1", model_path=model_path)


def ensure_bootstrap_version(registry: VersionRegistry, model_path: str) -> EmbedVersion:
    """On a new store, register v1 and make it active so ingestion has a target version."""
    active = registry.active()
    if active is not None:
        return active
    v, _ = registry.register(default_v1_spec(model_path))
    return registry.activate(v.name, reason="bootstrap", require_validated=False)


def spec_dict(spec: EmbedVersionSpec) -> dict:
    return asdict(spec)
