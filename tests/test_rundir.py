"""A run dir holds one configuration: reruns resume it, other configurations are refused before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from lwcompress.compress.config import CompressorConfig
from lwcompress.errors import UserError
from lwcompress.generate.generators import DistilledConfig
from lwcompress.layerwise import LayerwiseConfig
from lwcompress.rundir import check_run_dir, result_config

from .conftest import run_cli


def config(**changes: object):
    cfg = OmegaConf.create({
        "seed": 0, "threads": 1, "eval_split": "test",
        "model": {"name": "resnet20", "weights": "w.pt"}, "data": {"name": "fashion_mnist", "batch_size": 128},
        "preconditioner": {"name": "bn_fold"}, "generator": {"name": "propagated", "seed": "${seed}"},
        "compressor": {"name": "quant", "wbits": 8}, "layerwise": {"steps": 2000},
        "trainer": {"precision": "32-true", "enable_progress_bar": True}, "logger": {"name": "csv"},
    })  # fmt: skip
    for key, value in changes.items():
        OmegaConf.update(cfg, key.replace("__", "."), value)
    return cfg


def saved(tmp_path: Path, cfg) -> Path:
    (tmp_path / ".hydra").mkdir()
    OmegaConf.save(cfg, tmp_path / ".hydra" / "config.yaml")
    return tmp_path


def test_result_config_resolves_and_skips_neutral_keys() -> None:
    leaves = result_config(config(seed=3), "config")
    assert leaves["generator.seed"] == 3 and leaves["compressor.wbits"] == 8
    assert "data.batch_size" not in leaves and "threads" not in leaves and "logger.name" not in leaves


def test_same_configuration_resumes_and_neutral_changes_are_allowed(tmp_path: Path) -> None:
    run = saved(tmp_path, config())
    check_run_dir(run, config(), "config")
    check_run_dir(run, config(threads=2, data__batch_size=7, trainer__enable_progress_bar=False, eval_split="val",
                              logger__name="wandb"), "config")  # fmt: skip
    check_run_dir(tmp_path / "new", config(compressor__wbits=4), "config")  # no run there yet


def test_another_configuration_is_refused_naming_the_differences(tmp_path: Path) -> None:
    run = saved(tmp_path, config())
    with pytest.raises(UserError) as e:
        check_run_dir(run, config(compressor__wbits=4, seed=1), "config")
    message = str(e.value)
    assert "holds a run of another configuration" in message and "\n" not in message
    assert "compressor.wbits: 8 -> 4" in message and "generator.seed: 0 -> 1" in message and "seed: 0 -> 1" in message


def test_a_setting_added_since_the_run_resumes_at_its_default_only(tmp_path: Path) -> None:
    """A run saved before an option existed (its config lacks the key) is the same run as one holding the option's
    schema default; any other value of it is another configuration."""
    run = saved(tmp_path, config(generator={"name": "distilled", "seed": 0, "steps": 200}))

    def typed(**changes: object):
        cfg = config()
        # every field, bn_slack included; clip and backdrop as they were before they became the default
        cfg.generator = OmegaConf.structured(DistilledConfig(**{"clip": False, "backdrop": 0.0} | changes))
        return cfg

    old = OmegaConf.load(run / ".hydra" / "config.yaml")
    assert "bn_slack" not in old.generator and OmegaConf.select(typed(), "generator.bn_slack") == 0.0
    check_run_dir(run, typed(), "config")
    with pytest.raises(UserError, match=r"generator.backdrop: <unset> -> 0.3"):  # a default changed since: not it
        check_run_dir(run, typed(clip=True, backdrop=0.3), "config")
    with pytest.raises(UserError, match=r"generator.bn_slack: <unset> -> 0.1"):
        check_run_dir(run, typed(bn_slack=0.1), "config")
    with pytest.raises(UserError, match=r"generator.steps: 200 -> 100"):
        check_run_dir(run, typed(steps=100), "config")


def test_a_rounding_default_changed_since_the_run_resumes_only_as_the_run_was(tmp_path: Path) -> None:
    """GPTQ's step searches (round 15), auto's split of the blocks it solves (round 16) and its GPTQ up to 3 bits
    (round 17) became defaults after runs were made without them: a run dir whose settings lack them is the run with
    the searches off, auto's blocks learned whole and GPTQ at 2 bits only; today's default is another configuration
    (its layers would differ)."""
    before = {"damp": 0.001, "rows": 128, "order": "descending"}
    run = saved(tmp_path, config(layerwise={"steps": 2000, "roundings": {"gptq": before}}))

    def typed(auto_blocks: str = "adaround", **gptq: object):
        cfg = config()
        cfg.layerwise = OmegaConf.structured(
            LayerwiseConfig(steps=2000, auto_blocks=auto_blocks, roundings={"gptq": before | gptq})
        )
        return cfg

    check_run_dir(run, typed(weight_search=False, input_search=False, candidates=11), "config")
    with pytest.raises(UserError, match=r"layerwise.roundings.gptq.input_search: <unset> -> True"):
        check_run_dir(run, typed(**LayerwiseConfig().roundings["gptq"]), "config")
    with pytest.raises(UserError, match=r"layerwise.auto_blocks: <unset> -> split"):
        check_run_dir(run, typed("split", weight_search=False, input_search=False, candidates=11), "config")
    # auto's GPTQ widths (3 since round 17): a run without the key solved only 2-bit layers by GPTQ.
    old = typed(weight_search=False, input_search=False, candidates=11)
    old.compressor = OmegaConf.structured(CompressorConfig(name="quant", wbits=8, auto_gptq_wbits=2))
    check_run_dir(run, old, "config")
    old.compressor.auto_gptq_wbits = 3
    with pytest.raises(UserError, match=r"compressor.auto_gptq_wbits: <unset> -> 3"):
        check_run_dir(run, old, "config")


def test_rerun_with_another_configuration_writes_nothing(tmp_path: Path) -> None:
    """Through the CLI: refused in preflight, before Hydra rewrites .hydra/ (its files keep their bytes)."""
    run = saved(tmp_path, config(model__name="resnet8_tiny", model__weights=None, data__name="synthetic"))
    before = {p.name: p.read_bytes() for p in (run / ".hydra").iterdir()}
    proc = run_cli("lwcompress", "model=resnet8_tiny", "data=synthetic", "compressor.wbits=4", f"hydra.run.dir={run}",
                   check=False)  # fmt: skip
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "holds a run of another configuration" in lines[0], proc.stderr
    assert {p.name: p.read_bytes() for p in (run / ".hydra").iterdir()} == before
    assert sorted(p.name for p in run.iterdir()) == [".hydra"]
