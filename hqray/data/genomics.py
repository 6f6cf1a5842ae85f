"""Genotypes simulated from published demographic models with stdpopsim + msprime.

Each individual is diploid; its features are genotype dosages 0/1/2 at segregating sites
that pass a minor-allele-frequency filter; its label is the population it was sampled
from. A generic contig (species-average mutation and recombination rates) is used, so no
genetic map is downloaded. The matrix is cached as Parquet keyed by every parameter.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import Field

from hqray.data.registry import Dataset, DatasetOptions, register_dataset
from hqray.errors import ConfigError, DataError

__all__ = ["GenomicsOptions", "simulate_genotypes", "default_cache_dir"]

LABEL_COLUMN = "__population__"


def default_cache_dir() -> Path:
    """``$HQRAY_CACHE_DIR`` or ``~/.cache/hqray``."""
    return Path(os.environ.get("HQRAY_CACHE_DIR", Path.home() / ".cache" / "hqray"))


class GenomicsOptions(DatasetOptions):
    """Options of the genomics dataset.

    Attributes:
        species: stdpopsim species id.
        model: demographic model id of that species.
        populations: populations to sample; default every population the model samples.
        individuals_per_population: diploid individuals drawn from each population.
        sequence_length: length of the generic contig in base pairs.
        seed: simulation seed (ancestry and mutations).
        min_maf: minor-allele-frequency filter over all sampled individuals.
        max_snps: keep at most this many SNPs (evenly spaced along the contig).
        cache: read/write the Parquet cache.
    """

    species: str = "HomSap"
    model: str = "AmericanAdmixture_4B18"
    populations: list[str] | None = Field(default=None, min_length=2)
    individuals_per_population: int = Field(100, ge=2, le=20_000)
    sequence_length: int = Field(2_000_000, ge=10_000, le=500_000_000)
    seed: int = Field(0, ge=0)
    min_maf: float = Field(0.05, ge=0.0, lt=0.5)
    max_snps: int = Field(2000, ge=1)
    cache: bool = True


def _resolve_model(options: GenomicsOptions):
    import stdpopsim

    try:
        species = stdpopsim.get_species(options.species)
    except (ValueError, KeyError):
        known = sorted(s.id for s in stdpopsim.all_species())
        raise ConfigError(f"genomics species {options.species!r} unknown; expected one of {known}") from None
    known_models = [m.id for m in species.demographic_models]
    if options.model not in known_models:
        raise ConfigError(
            f"genomics model {options.model!r} is not a {options.species} model; "
            f"expected one of {sorted(known_models)}"
        )
    model = species.get_demographic_model(options.model)
    sampled = [p.name for p in model.populations if p.allow_samples]
    populations = options.populations or sampled
    unknown = [p for p in populations if p not in sampled]
    if unknown:
        raise ConfigError(
            f"genomics populations {unknown} are not sampled by model {options.model!r}; "
            f"expected a subset of {sampled}"
        )
    if len(set(populations)) != len(populations):
        raise ConfigError(f"genomics populations repeat a name: {populations}")
    return species, model, list(populations)


def simulate_genotypes(options: GenomicsOptions) -> pd.DataFrame:
    """Simulates the genotype table: one row per individual, one column per SNP.

    Returns:
        A frame of int8 dosages with SNP columns named ``snp_<position>`` and the population
        id in the column ``__population__``.
    """
    import msprime  # noqa: F401  (the engine below needs it; import early for a clear error)
    import stdpopsim

    species, model, populations = _resolve_model(options)
    with warnings.catch_warnings():
        # stdpopsim warns that a generic contig has no genetic map; that is the point here.
        warnings.simplefilter("ignore")
        contig = species.get_contig(length=options.sequence_length)
        engine = stdpopsim.get_engine("msprime")
        samples = {population: options.individuals_per_population for population in populations}
        tree_sequence = engine.simulate(model, contig, samples, seed=options.seed)

    haplotypes = tree_sequence.genotype_matrix()  # (sites, sample nodes), 0/1 (biallelic mostly)
    haplotypes = np.minimum(haplotypes, 1).astype(np.int8)  # multi-allelic sites: derived or not
    node_population = tree_sequence.nodes_population
    individuals = list(tree_sequence.individuals())
    node_index = {int(node): column for column, node in enumerate(tree_sequence.samples())}
    dosage = np.zeros((len(individuals), haplotypes.shape[0]), dtype=np.int8)
    population_ids = []
    for row, individual in enumerate(individuals):
        columns = [node_index[int(node)] for node in individual.nodes]
        dosage[row] = haplotypes[:, columns].sum(axis=1)
        metadata = tree_sequence.population(int(node_population[individual.nodes[0]])).metadata
        population_ids.append(metadata["name"])

    frequency = dosage.mean(axis=0) / 2.0
    maf = np.minimum(frequency, 1.0 - frequency)
    keep = np.flatnonzero(maf >= max(options.min_maf, 1e-12))
    if keep.size == 0:
        raise DataError(
            f"genomics: no SNP passes min_maf={options.min_maf} on a {options.sequence_length} bp "
            "contig; lengthen sequence_length or lower min_maf"
        )
    if keep.size > options.max_snps:
        keep = keep[np.linspace(0, keep.size - 1, options.max_snps).round().astype(int)]
    positions = tree_sequence.tables.sites.position[keep].astype(np.int64)
    frame = pd.DataFrame(dosage[:, keep], columns=[f"snp_{p}" for p in positions])
    frame[LABEL_COLUMN] = population_ids
    return frame


def _cache_path(options: GenomicsOptions) -> Path:
    import stdpopsim

    key = options.model_dump(exclude={"cache"}) | {"stdpopsim": stdpopsim.__version__}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return default_cache_dir() / "genomics" / f"{options.model}-{digest}.parquet"


@register_dataset("genomics", GenomicsOptions,
                  "stdpopsim + msprime genotype dosages of a human demographic model, ancestry")
def load_genomics(options: GenomicsOptions) -> Dataset:
    _, _, populations = _resolve_model(options)
    path = _cache_path(options)
    frame = None
    if options.cache and path.is_file():
        try:
            frame = pd.read_parquet(path)
        except Exception:  # a torn or foreign cache file is rebuilt, never trusted
            frame = None
    if frame is None:
        frame = simulate_genotypes(options)
        if options.cache:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(f".{os.getpid()}.tmp")
            frame.to_parquet(partial, index=False)
            os.replace(partial, path)  # atomic: concurrent loaders never read half a file
    labels_text = frame[LABEL_COLUMN].to_numpy()
    features = frame.drop(columns=[LABEL_COLUMN])
    index = {population: i for i, population in enumerate(populations)}
    labels = np.array([index[p] for p in labels_text], dtype=np.int64)
    return Dataset("genomics", features.to_numpy(dtype=np.float64), labels,
                   tuple(features.columns), tuple(populations), options.model_dump())
