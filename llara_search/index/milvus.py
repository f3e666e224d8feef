"""Vectors in Milvus: Milvus Lite in-process for a `.db` path, a Milvus server or cluster for http(s)://host:port.

Layout. An index owns collections `<prefix>_g<N>` (prefix `llara_<index id>` unless the URI names one after `#`),
each described as `{"llara_search_index": <index id>, "dim": ...}` so that a collection of another index is refused
instead of mixed into this one. A row is one chunk: `id` (the chunk id, as everywhere), `vector`, `added_gen`,
`removed_gen` (2^62 while no generation removed it), `path` and `format` of its document.

Generations. A reader pins generation G in the database and searches the collection G names with the filter
`added_gen <= G and removed_gen > G` inside the ANN search, so it sees exactly G's chunks however far a writer
has got. An incremental ingest writes into the same collection: new chunks with `added_gen = G+1` (invisible to
G), removed ones re-written with `removed_gen = G+1` (still visible to G; an upsert is atomic in Milvus); the
database commit of G+1 is the switch, as with FAISS. Why not one collection per generation behind an alias: every
ingest would copy every vector (16 KiB each at 4096-d) however small the change. A rebuild (reindex, re-encode,
repair, an index type change, moving an index here) does write a new collection `<prefix>_g<G+1>`, since every
vector is written anyway; the previous collection stays for readers on G until cleanup. After each commit the
alias `<prefix>` is switched to the current collection for other Milvus tools (our readers never need it).

Crash safety. Nothing in Milvus is visible before the database commit; a re-run of an interrupted generation first
deletes the rows an earlier attempt added (`added_gen >= G+1`), resets the removals it marked that the database
does not hold, and drops the half-written collection of an interrupted rebuild. Purged rows are deleted by
`removed_gen <= horizon`, which is idempotent. Milvus Lite is flushed before the database commit (its own log is
not fsynced); a server acknowledges inserts once they are in its log.

Bad input gives one line (VectorDBError): unreachable, refused credentials, a collection of another index, another
dimension, rows or collections lost behind our back (the count of rows visible at a generation is checked against
the database whenever a process first opens it, and before every write).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from pathlib import Path

import numpy as np

from ..errors import VectorDBError
from ..faults import crash_point
from .ann import (RERANK_FACTORS, IndexPlan, candidate_recall, leave_one_out_queries, nprobe_ladder, recall_target,
                  tuning_report, walk_plans)
from .base import BuiltGeneration, VectorBackend, dir_bytes
from .milvus_common import (CONNECT_TIMEOUT_S, LITE_INDEX_TYPES, LIVE, MAX_ID_LIST, MAX_LIMIT, MILVUS_TYPES, PATH_MAX,
                            PREFIX, SCHEMES, SERVER_INDEX_TYPES, MilvusPlan, failure_reason, glob_to_like, lite_busy,
                            lite_held_elsewhere, normalize_uri, plan_milvus, plan_of_generation, quiet_logs,
                            visible_at)

log = logging.getLogger(__name__)
LITE_LOAD_TRIES = 4  # loads of a collection whose index files Milvus Lite may still be writing


# -------------------------------------------------------------------------------------------------- backend
class MilvusBackend(VectorBackend):
    kind = "milvus"

    def __init__(self, paths, uri: str, index_id: str, dim: int):
        self.paths = paths
        self.uri = uri
        self.address, _, prefix = uri.partition("#")
        self.local = not self.address.lower().startswith(SCHEMES)
        self.index_id = index_id
        self._prefix = prefix  # named after '#' in the URI, else derived from the index id (set late for new indexes)
        self.dim = int(dim)
        self._client = None
        self._lite: bool | None = None
        self._lock = threading.Lock()
        self._float16: dict[str, bool] = {}  # collection -> its vectors are FLOAT16_VECTOR

    @property
    def prefix(self) -> str:
        return self._prefix or f"llara_{re.sub(r'[^0-9a-zA-Z]', '', self.index_id)[:16] or 'index'}"

    # ---------------------------------------------------------------------------------------- connection
    def describe(self) -> str:
        return f"Milvus Lite at {self.address}" if self.local else f"Milvus at {self.address}"

    @property
    def index_types(self) -> tuple[str, ...]:  # type: ignore[override]
        return LITE_INDEX_TYPES if self.lite else SERVER_INDEX_TYPES

    @property
    def lite(self) -> bool:
        if self._lite is None:
            self.client  # noqa: B018 - connecting tells
        return bool(self._lite)

    @property
    def client(self):
        with self._lock:
            if self._client is None:
                self._client = self._connect()
            return self._client

    def _connect(self):
        try:
            from pymilvus import MilvusClient
        except ImportError:
            raise VectorDBError(f"index {self.paths.root} keeps its vectors in {self.describe()}: install the client "
                                "with pip install 'llara-search[milvus]'") from None
        quiet_logs()
        if self.local:
            path = Path(self.address)
            if not path.parent.is_dir():
                raise VectorDBError(f"cannot open Milvus Lite database {path}: folder {path.parent} does not exist")
            if path.exists() and not path.is_dir():
                raise VectorDBError(f"{path} is not a Milvus Lite database (this Milvus Lite keeps one in a folder)")
            if lite_held_elsewhere(path):
                raise VectorDBError(lite_busy(path))
        token = os.environ.get("MILVUS_TOKEN") or ""
        if not token and os.environ.get("MILVUS_USER"):
            token = f"{os.environ['MILVUS_USER']}:{os.environ.get('MILVUS_PASSWORD', '')}"
        try:
            client = MilvusClient(uri=self.address, token=token, timeout=CONNECT_TIMEOUT_S)
            version = str(client.get_server_version())
        except Exception as exc:  # noqa: BLE001 - pymilvus raises several types; each becomes one line
            if self.local and lite_held_elsewhere(Path(self.address)):
                raise VectorDBError(lite_busy(Path(self.address))) from None
            raise VectorDBError(self._connect_error(exc)) from None
        self._lite = self.local or "lite" in version.lower()
        return client

    def _connect_error(self, exc: Exception) -> str:
        msg = failure_reason(exc)
        low = msg.lower()
        if any(w in low for w in ("auth", "unauthenticated", "credential", "password", "permission denied",
                                  "api key", "token")):
            return (f"Milvus at {self.address} refused the credentials ({msg}); set MILVUS_TOKEN ('user:password' "
                    "or an API key), or MILVUS_USER and MILVUS_PASSWORD")
        return (f"cannot reach Milvus at {self.address} ({msg}); start it or fix the address (recorded with the "
                "index when it was created)")

    def _call(self, what: str, fn, *args, **kwargs):
        """A Milvus call whose failure becomes one line."""
        try:
            return fn(*args, **kwargs)
        except VectorDBError:
            raise
        except Exception as exc:  # noqa: BLE001
            msg = failure_reason(exc)
            if any(w in msg.lower() for w in ("unavailable", "connect", "deadline", "unauthenticated")):
                raise VectorDBError(self._connect_error(exc)) from None
            raise VectorDBError(f"{self.describe()} failed to {what}: {msg}") from None

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is None:
            return
        try:
            client.close()
        except Exception:  # noqa: BLE001
            pass
        if self.local:  # the Lite server of this process holds the folder's lock until released
            try:
                from milvus_lite.server_manager import server_manager_instance

                server_manager_instance.release_server(self.address)
            except Exception:  # noqa: BLE001
                pass

    # ---------------------------------------------------------------------------------------- collections
    def name_of(self, G: int) -> str:
        return f"{self.prefix}_g{int(G):08d}"

    @staticmethod
    def collection_of(gen) -> str | None:
        f = str(getattr(gen, "index_file", "") or "")
        return f[len(PREFIX):] if f.startswith(PREFIX) else None

    def _ours(self) -> list[str]:
        names = self._call("list collections", self.client.list_collections)
        return sorted(n for n in names if n.startswith(self.prefix + "_g") and n[len(self.prefix) + 2:].isdigit())

    def _meta(self, name: str) -> tuple[dict, int | None]:
        desc = self._call(f"describe collection {name}", self.client.describe_collection, name)
        props = desc.get("properties") or {}
        meta = {"llara_search_index": props["llara_search.index"]} if "llara_search.index" in props else {}
        if not meta:  # properties are the owner mark; the description says the same for people
            try:
                meta = json.loads(desc.get("description") or "{}")
            except ValueError:
                meta = {}
        dim = None
        for f in desc.get("fields", []):
            kind = str(getattr(f.get("type"), "name", f.get("type")))
            if "VECTOR" in kind:
                dim = int((f.get("params") or {}).get("dim", 0)) or None
                self._float16[name] = kind == "FLOAT16_VECTOR"
        return (meta if isinstance(meta, dict) else {}), dim

    def _verify(self, name: str, *, lost_hint: bool = True) -> None:
        """The collection exists, holds vectors of this index's dimension, and belongs to this index."""
        if not self._call(f"look up collection {name}", self.client.has_collection, name):
            raise VectorDBError(self._lost(f"collection {name} is missing") if lost_hint else
                                f"collection {name} is missing from {self.describe()}")
        meta, dim = self._meta(name)
        if dim is not None and self.dim and dim != self.dim:
            raise VectorDBError(f"Milvus collection {name} at {self.address} holds {dim}-d vectors, index "
                                f"{self.paths.root} has {self.dim}-d ones: it belongs to another index or model; give "
                                f"this index its own collection name (--vector-db {self.address}#another_name)")
        owner = meta.get("llara_search_index")
        if owner != self.index_id:
            raise VectorDBError(f"Milvus collection {name} at {self.address}{f' ({dim}-d vectors)' if dim else ''} "
                                f"belongs to "
                                f"{'index ' + str(owner) if owner else 'something other than llara-search'}, not to "
                                f"index {self.paths.root} ({self.index_id}); give this index its own collection name "
                                f"(--vector-db {self.address}#another_name)")

    def _lost(self, what: str) -> str:
        return (f"{self.describe()} lost data behind llara-search's back: {what}; run `llara-search doctor --repair "
                f"--index {self.paths.root}` to rebuild it from the stored vectors")

    def _count(self, name: str, expr: str) -> int:
        rows = self._call("count rows", self.client.query, name, filter=expr, output_fields=["count(*)"],
                          consistency_level="Strong")
        return int(rows[0]["count(*)"]) if rows else 0

    def _ids(self, name: str, expr: str) -> np.ndarray:
        out: list[int] = []
        it = self._call("list ids", self.client.query_iterator, name, batch_size=8192, filter=expr,
                        output_fields=["id"])
        while True:
            batch = self._call("list ids", it.next)
            if not batch:
                break
            out.extend(int(r["id"]) for r in batch)
        it.close()
        return np.unique(np.asarray(out, np.int64))

    def _loaded(self, name: str) -> None:
        state = self._call("read the load state", self.client.get_load_state, name)
        if "Loaded" not in str(state.get("state", state)) or "NotLoad" in str(state.get("state", state)):
            for attempt in range(LITE_LOAD_TRIES if self.lite else 1):
                try:
                    return self._call(f"load collection {name}", self.client.load_collection, name)
                except VectorDBError as exc:
                    # Milvus Lite writes a new segment's index files in the background after a flush; a load that
                    # comes first reads a short file (faiss "read_vector_with_known_size"), seen on a busy 2-core box
                    if attempt + 1 == LITE_LOAD_TRIES or "index_read" not in str(exc):
                        raise
                    log.warning("Milvus Lite could not load %s yet (its index files are still being written); "
                                "trying again", name)
                    time.sleep(1.0 + attempt)

    def _check_prefix(self) -> None:
        """No collection under this prefix may belong to another index (a shared `#name`)."""
        for name in self._ours():
            meta, _ = self._meta(name)
            if meta.get("llara_search_index") != self.index_id:
                self._verify(name)  # raises the one-line refusal

    # ---------------------------------------------------------------------------------------- writing
    def check_writable(self, gen) -> None:
        self.client  # noqa: B018 - reachable, credentials accepted
        name = self.collection_of(gen) if gen is not None else None
        if name is None:
            self._check_prefix()
            return
        self._verify(name)
        self._loaded(name)
        n = self._count(name, visible_at(gen.id))
        if n != gen.ntotal:
            raise VectorDBError(self._lost(f"collection {name} holds {n} vectors of generation {gen.id}, the "
                                           f"database {gen.ntotal}"))

    def build(self, G, prev_gen, vectors, all_ids, added, removed, *, index_type, factory, rebuild, attributes):
        want = plan_milvus(len(all_ids), vectors.dim, lite=self.lite, index_type=index_type or "auto")
        prev = self.collection_of(prev_gen) if prev_gen is not None else None
        if prev is not None and not rebuild and prev_gen.index_type == want.index_type \
                and self._call("look up a collection", self.client.has_collection, prev):
            self._verify(prev)
            if self._update(prev, G, vectors, all_ids, added, removed, attributes):
                plan = plan_of_generation(prev_gen)
                return self._built(prev, G, plan, len(all_ids), prev_gen.trained_on or 0)
            log.warning("Milvus collection %s does not hold the %d chunks of generation %d after the incremental "
                        "update; rebuilding it from the stored vectors", prev, len(all_ids), G)
        return self._rebuild(G, vectors, all_ids, want, attributes)

    def _update(self, name, G, vectors, all_ids, added, removed, attributes) -> bool:
        self._loaded(name)
        self._call("delete the rows of an interrupted ingest", self.client.delete, name, filter=f"added_gen >= {G}")
        marked = self._ids(name, f"removed_gen >= {G} and removed_gen < {LIVE}")
        removed = np.asarray(removed, np.int64)
        unmark = np.setdiff1d(marked, removed)  # marked by an interrupted attempt, not removed by this one
        mark = np.setdiff1d(removed, marked)
        for ids, gen_value in ((unmark, LIVE), (mark, G)):
            if len(ids):
                added_gens = self._added_gens(name, ids)
                have = np.array([i in added_gens for i in ids.tolist()], bool)
                ids = ids[have]
                self._write(name, ids, vectors, attributes, np.array([added_gens[i] for i in ids.tolist()]),
                            gen_value, upsert=True)
        self._write(name, np.asarray(added, np.int64), vectors, attributes, G, LIVE)
        return self._count(name, visible_at(G)) == len(all_ids)

    def _added_gens(self, name: str, ids: np.ndarray) -> dict[int, int]:
        out: dict[int, int] = {}
        for a in range(0, len(ids), 1000):
            part = ",".join(str(int(i)) for i in ids[a:a + 1000])
            for r in self._call("read rows", self.client.query, name, filter=f"id in [{part}]",
                                output_fields=["id", "added_gen"], consistency_level="Strong"):
                out[int(r["id"])] = int(r["added_gen"])
        return out

    def _rows_per_call(self) -> int:
        return int(max(1, min(4096, (8 * 2**20) // max(1, 4 * self.dim))))

    def _write(self, name, ids: np.ndarray, vectors, attributes, added_gen, removed_gen, upsert: bool = False):
        """Insert (or upsert) the chunks `ids` with their stored vectors, in calls of at most ~8 MiB."""
        if name not in self._float16:
            self._meta(name)
        float16 = self._float16.get(name, False)
        step = self._rows_per_call()
        added_gen = np.broadcast_to(np.asarray(added_gen, np.int64), (len(ids),))
        for a in range(0, len(ids), step):
            part = ids[a:a + step]
            vecs = vectors.get(part)
            vecs = vecs.astype(np.float16) if float16 else vecs
            paths, formats = attributes(part)
            rows = [{"id": int(i), "vector": v, "added_gen": int(ag), "removed_gen": int(removed_gen),
                     "path": p.encode()[:PATH_MAX].decode(errors="ignore"), "format": (f or "")[:64]}
                    for i, v, ag, p, f in zip(part.tolist(), vecs, added_gen[a:a + step].tolist(), paths, formats)]
            self._call("write vectors", self.client.upsert if upsert else self.client.insert, name, rows)
            crash_point("milvus-write")

    def _create(self, name: str, plan: MilvusPlan) -> None:
        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False, description=json.dumps(
            {"llara_search_index": self.index_id, "dim": self.dim, "index": plan.factory}))
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT16_VECTOR if plan.float16 else DataType.FLOAT_VECTOR, dim=self.dim)
        schema.add_field("added_gen", DataType.INT64)
        schema.add_field("removed_gen", DataType.INT64)
        schema.add_field("path", DataType.VARCHAR, max_length=PATH_MAX)
        schema.add_field("format", DataType.VARCHAR, max_length=64)
        params = self.client.prepare_index_params()
        params.add_index("vector", index_type=MILVUS_TYPES[plan.index_type], metric_type="IP", params=plan.build)
        self._call(f"create collection {name}", self.client.create_collection, name, schema=schema,
                   index_params=params, consistency_level="Strong",
                   properties={"llara_search.index": self.index_id, "llara_search.dim": str(self.dim)})
        self._float16[name] = plan.float16

    def _rebuild(self, G, vectors, all_ids, plan: MilvusPlan, attributes) -> BuiltGeneration:
        name = self.name_of(G)
        if self._call("look up a collection", self.client.has_collection, name):
            self._verify(name, lost_hint=False)  # another index's collection is refused, never dropped
            self._call(f"drop the half-written {name}", self.client.drop_collection, name)  # an interrupted rebuild
        self._check_prefix()
        self._create(name, plan)
        self._write(name, np.asarray(all_ids, np.int64), vectors, attributes, G, LIVE)
        tuning = None
        if plan.index_type != "flat" and len(all_ids) >= 1000:
            self._ready_for_search(name)
            plan, tuning = self._tune(name, G, plan, vectors, np.asarray(all_ids, np.int64))
        built = self._built(name, G, plan, len(all_ids), len(all_ids))
        built.index.tuning = tuning
        return built

    def _ready_for_search(self, name: str, timeout_s: float = 6 * 3600) -> None:
        """Flush, wait until the server has indexed every row (Lite indexes when loading), load."""
        self._call("flush", self.client.flush, name)
        if self.lite:
            self._call("release", self.client.release_collection, name)
        else:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                info = self._call("describe the index", self.client.describe_index, name, "vector") or {}
                if int(info.get("pending_index_rows", 0) or 0) == 0 and \
                        int(info.get("indexed_rows", 0) or 0) >= int(info.get("total_rows", 0) or 0):
                    break
                time.sleep(2)
        self._loaded(name)

    def _tune(self, name: str, G: int, plan: MilvusPlan, vectors, ids: np.ndarray,
              k: int = 10) -> tuple[MilvusPlan, dict]:
        """The shallowest re-rank depth, then the smallest search parameter, reaching the recall target (recall@k on
        stored vectors left out of their own answers, as the FAISS path is tuned); with what was measured, and a
        warning when even the deepest setting misses the target (never silently)."""
        target = recall_target()
        q, truth = leave_one_out_queries(ids, vectors.get, k, 64, 0)
        compressed = plan.index_type in ("ivfpq", "diskann")
        factors = RERANK_FACTORS if compressed else (1,)
        if plan.index_type in ("ivf_flat", "ivfpq"):
            ladder = nprobe_ladder(plan.build["nlist"])
        else:
            ladder = [16, 32, 64, 128, 256, 512, 1024, 2048]
        index = MilvusIndex(self, name, G, plan, len(ids))

        def recall_at(factor: int, value: int) -> float:
            return candidate_recall(truth, index.search(q, factor * k + 1, nprobe=value)[1])

        chosen, curve, met = walk_plans(recall_at, factors, ladder, target)
        tuning = tuning_report(k, chosen, curve, target, met, len(q))
        if not met:
            tuning["warning"] = (f"Milvus {plan.index_type} reaches recall@{k} {curve[chosen]:.3f}, below the "
                                 f"{target:.2f} target, at its deepest setting: searches miss true neighbours; use "
                                 "--index-type flat (exact) or another index type")
            log.warning("%s", tuning["warning"])
        return MilvusPlan(plan.index_type, plan.float16, plan.build, int(chosen[1]), int(chosen[0])), tuning

    def _built(self, name: str, G: int, plan: MilvusPlan, n: int, trained_on: int) -> BuiltGeneration:
        index = MilvusIndex(self, name, G, plan, n)

        def save() -> None:
            if self.lite:  # Lite's log is written, not fsynced: make the rows durable before the commit
                self._call("flush", self.client.flush, name)

        def published() -> None:
            crash_point("switch")  # generation committed, alias still on the previous collection
            self.switch_alias(name)

        return BuiltGeneration(index, PREFIX + name, trained_on if plan.index_type != "flat" else 0, save,
                               published)

    def switch_alias(self, name: str) -> None:
        """Point `<prefix>` at the current collection, for other Milvus tools; never an alias we do not own."""
        try:
            aliases = self._call("list aliases", self.client.list_aliases, name).get("aliases", [])
            if self.prefix in aliases:
                return
            try:
                target = self.client.describe_alias(self.prefix).get("collection_name")
            except Exception:  # noqa: BLE001 - no such alias yet
                target = None
            if target is None:
                self._call("create the alias", self.client.create_alias, name, self.prefix)
            elif target.startswith(self.prefix + "_g"):
                self._call("switch the alias", self.client.alter_alias, name, self.prefix)
        except VectorDBError as exc:
            log.warning("alias %s not switched: %s", self.prefix, exc)

    def republish(self, gen) -> None:
        name = self.collection_of(gen)
        if name and self.alias_target() != name:
            self.switch_alias(name)

    def alias_target(self) -> str | None:
        try:
            return self.client.describe_alias(self.prefix).get("collection_name")
        except Exception:  # noqa: BLE001
            return None

    # ---------------------------------------------------------------------------------------- reading
    def open(self, gen) -> "MilvusIndex":
        name = self.collection_of(gen)
        if name is None:
            from .generations import FaissBackend  # a generation from before the index moved to Milvus

            return FaissBackend(self.paths).open(gen)
        self._verify(name)
        self._loaded(name)
        n = self._count(name, visible_at(gen.id))
        if n != gen.ntotal:
            raise VectorDBError(self._lost(f"collection {name} holds {n} vectors of generation {gen.id}, the "
                                           f"database {gen.ntotal}"))
        return MilvusIndex(self, name, gen.id, plan_of_generation(gen), gen.ntotal)

    # ---------------------------------------------------------------------------------------- maintenance
    def cleanup(self, G: int, horizon: int, kept: dict[int, str]) -> None:
        keep = {f[len(PREFIX):] for f in kept.values() if f and f.startswith(PREFIX)}
        for name in sorted(keep):
            if self._call("look up a collection", self.client.has_collection, name):
                self._call("delete purged rows", self.client.delete, name, filter=f"removed_gen <= {int(horizon)}")
        for name in self._ours():
            if name not in keep and self._owned(name):
                self._call(f"drop {name}", self.client.drop_collection, name)

    def _owned(self, name: str) -> bool:
        try:
            meta, _ = self._meta(name)
        except VectorDBError:
            return False
        return meta.get("llara_search_index") == self.index_id

    def orphans(self, keep: set[str]) -> list[str]:
        names = {f[len(PREFIX):] for f in keep if f and f.startswith(PREFIX)}
        return [n for n in self._ours() if n not in names and self._owned(n)]

    def quarantine(self, names: list[str], stamp: str) -> list[dict]:
        """Rename (never drop) collections no generation names, and release them from the query nodes."""
        out = []
        for name in names:
            new = f"{self.prefix}_quarantine_{stamp}_{name[len(self.prefix) + 1:]}"[:255]
            self._call("release", self.client.release_collection, name)
            self._call(f"rename {name}", self.client.rename_collection, name, new)
            out.append({"collection": name, "renamed_to": new, "at": self.address,
                        "reason": "named by no generation"})
        return out

    def compact(self) -> None:
        for name in self._ours():
            if self._owned(name):
                self._call("compact", self.client.compact, name)

    def needs_retrain(self, gen, n_now, dim, index_type="auto"):
        if self.collection_of(gen) is None:
            return None
        try:
            want = plan_milvus(n_now, dim, lite=self.lite, index_type=index_type or "auto")
        except VectorDBError:
            return None
        if want.index_type != gen.index_type:
            return f"at {n_now} chunks a Milvus {want.index_type} index fits better than the current {gen.index_type}"
        return None

    def disk_bytes(self) -> int:
        return dir_bytes(Path(self.address)) if self.local and Path(self.address).is_dir() else 0

    def status(self) -> dict:
        return {"vector_db": self.uri, "vector_db_kind": "milvus-lite" if self.local else "milvus",
                "collection_prefix": self.prefix}


class MilvusIndex:
    """Generation G of a Milvus collection, searched with G's visibility filter inside the ANN search."""

    def __init__(self, backend: MilvusBackend, name: str, G: int, plan: MilvusPlan, ntotal: int):
        self.backend, self.name, self.G, self.mplan, self._ntotal = backend, name, int(G), plan, int(ntotal)
        self.plan = IndexPlan(plan.index_type, plan.factory, int(plan.build.get("nlist", 0)), plan.value, 0,
                              plan.rerank)
        self.tuning: dict | None = None  # what the build-time tuner measured; None when this build did not tune

    @property
    def ntotal(self) -> int:
        return self._ntotal

    @property
    def exact(self) -> bool:
        return self.mplan.index_type == "flat"

    def search(self, queries: np.ndarray, k: int, *, allowed: np.ndarray | None = None, nprobe: int | None = None,
               where: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of shape (nq, k), ids -1 where fewer exist. `where` (a path glob) filters inside the
        search; `allowed` then keeps exactly the ids the database allows."""
        q = np.asarray(queries, np.float32)
        limit = int(max(1, min(k, MAX_LIMIT)))
        fetch = limit
        expr = visible_at(self.G)
        if where:
            from ..store.fulltext import path_glob

            like, exact = glob_to_like(path_glob(where))
            if exact or allowed is None:
                expr += f' and path like "{like}"'
            elif len(allowed) <= MAX_ID_LIST:  # the LIKE would let in more: name the allowed ids instead
                expr += f" and id in [{','.join(str(int(i)) for i in allowed)}]"
            else:  # a wide filter LIKE cannot say exactly: fetch more, keep what the database allows
                expr += f' and path like "{like}"'
                fetch = min(MAX_LIMIT, 4 * limit)
        kind = self.mplan.index_type
        value = int(nprobe or self.mplan.value or 0)
        params: dict = {}
        if kind in ("ivf_flat", "ivfpq"):
            params = {"nprobe": max(1, value)}
        elif kind == "hnsw":
            params = {"ef": max(value, limit)}
        elif kind == "diskann":
            params = {"search_list": max(value, limit)}
        data = [v.astype(np.float16) if self.mplan.float16 else v for v in q]
        res = self.backend._call("search", self.backend.client.search, self.name, data=data, limit=fetch,
                                 filter=expr, anns_field="vector", consistency_level="Strong",
                                 search_params={"metric_type": "IP", "params": params})
        ids = np.full((len(q), limit), -1, np.int64)
        scores = np.full((len(q), limit), -np.inf, np.float32)
        for qi, hits in enumerate(res):
            got = [(int(h["id"]), float(h["distance"])) for h in hits]
            if allowed is not None and got:
                ok = np.isin(np.array([g[0] for g in got], np.int64), allowed)
                got = [g for g, keep in zip(got, ok) if keep]
            got.sort(key=lambda x: (-x[1], x[0]))  # ties by id, as the database orders them
            for j, (i, s) in enumerate(got[:limit]):
                ids[qi, j], scores[qi, j] = i, s
        return scores, ids

    def ids(self) -> np.ndarray:
        return self.backend._ids(self.name, visible_at(self.G))

    def memory_bytes(self) -> int:
        return int(self.mplan.bytes_per_vector(self.backend.dim) * self._ntotal)


__all__ = ["MilvusBackend", "MilvusIndex", "normalize_uri", "plan_milvus", "visible_at"]  # the last three re-exported
