"""`sparseir info`: what an index directory holds."""

from __future__ import annotations

import json

import click

from ..segments import foreign_names, is_segmented, load_segmented
from ..sharded import is_sharded, load_sharded
from ..storage import read_manifest


@click.command()
@click.argument("index_dir", type=click.Path(file_okay=False), required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the whole manifest (or the versions) as JSON.")
def info(index_dir, as_json):
    """Describe the index in INDEX_DIR: kind, counts, parameters, files.

    Without INDEX_DIR: this installation, with the versions of the optional parts present.
    """
    if index_dir is None:
        from .. import __version__
        from ..extras import describe_installation, installed_versions

        click.echo(json.dumps({"sparseir": __version__, **installed_versions()}, indent=2) if as_json
                   else describe_installation(__version__))
        return
    sharded, segmented = is_sharded(index_dir), is_segmented(index_dir)
    if sharded:
        manifest = load_sharded(index_dir).manifest
    elif segmented:
        opened = load_segmented(index_dir)
        manifest = opened.manifest
    else:
        manifest = read_manifest(index_dir)
    if as_json:
        click.echo(json.dumps(manifest, indent=2))
        return
    if sharded:
        click.echo(_sharded_summary(manifest))
        return
    if segmented:
        click.echo(_segmented_summary(opened, foreign_names(index_dir)))
        return
    stats = manifest.get("info", {})
    vocab = manifest["vocab"]
    arrays = manifest["arrays"]
    total = sum(entry["bytes"] for entry in arrays.values())
    lines = [
        f"kind            {manifest['kind']}",
        f"format version  {manifest['format_version']}, array layout {manifest.get('layout_version', 1)} "
        f"(sparseir {manifest.get('sparseir_version', '?')})",
        f"documents       {stats.get('n_docs', '?'):,}" if "n_docs" in stats else "documents       ?",
        f"non-zeros       {stats.get('nnz', 0):,}",
        f"vocabulary      {vocab.get('name') or ('open' if vocab.get('open') else 'custom')} ({vocab['size']:,} terms)",
        f"build params    {json.dumps(manifest.get('build_params', {}))}",
        f"search defaults {json.dumps(manifest.get('search_defaults', {}))}",
        f"build time      {stats.get('build_seconds', '?')} s",
        *_tuning_lines(manifest.get("tuning")),
        f"size on disk    {total / 2**20:,.1f} MiB in {len(arrays)} arrays",
    ]
    lines += [f"  {name:<22} {entry['dtype']:<8} {str(tuple(entry['shape'])):<16} {entry['bytes'] / 2**20:,.2f} MiB"
              for name, entry in sorted(arrays.items())]
    click.echo("\n".join(lines))


def _tuning_lines(tuning: dict | None) -> list[str]:
    if not tuning:
        return []
    return [f"tuned for       recall@{tuning['k']} >= {tuning['target_recall']}: held-out recall "
            f"{tuning['recall_heldout']:.4f} ± {tuning['recall_heldout_stderr']:.4f}, "
            f"{tuning['latency_ms']:.3f} ms/query (one thread)"]


def _segmented_summary(index, foreign: list[str]) -> str:
    manifest = index.manifest
    vocab = index.vocab if index.has_vocab else None
    lines = [f"kind            {manifest['kind']}, segmented: generation {manifest['generation']}, "
             f"{len(manifest['segments'])} segment(s)",
             f"documents       {index.n_live:,} live",
             "vocabulary      none yet (set by the first documents added)" if vocab is None else
             f"vocabulary      {vocab.name or ('open' if vocab.open else 'custom')} ({len(vocab):,} terms)",
             f"build params    {json.dumps(manifest.get('build_params', {}))}",
             f"merge policy    segments under {manifest['small_segment']:,} documents are exact; "
             f"more than {manifest['max_segments']} segments merge"]
    lines += [f"  {entry['dir']:<14} {entry['kind']:<8} {entry['n_docs']:>10,} documents  {entry['n_deleted']:,} deleted"
              for entry in manifest["segments"]]
    if foreign:
        lines.append(f"not part of the index, left alone: {', '.join(foreign)}")
    return "\n".join(lines)


def _sharded_summary(manifest: dict) -> str:
    lines = [f"kind            {manifest['kind']}, {len(manifest['shards'])} shards ({manifest['partition']} partition)",
             f"documents       {manifest['n_docs']:,}",
             f"build params    {json.dumps(manifest.get('build_params', {}))}"]
    for shard in manifest["shards"]:
        rows = shard.get("rows")
        span = f"rows {rows[0]:,}-{rows[1]:,}" if isinstance(rows, list) else "hashed rows"
        lines.append(f"  {shard['dir']:<14} {shard['n_docs']:>10,} documents  {span}")
    return "\n".join(lines)
