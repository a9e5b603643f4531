"""Settings: one validation with the flag's name, notes for settings that do not apply, identity by meaning."""
import pytest

from lth_tf.config import DataConfig, ExperimentConfig, ModelConfig, PruneConfig, Rewind, RunConfig, Step, TrainConfig
from lth_tf.errors import UserError


def cfg(**sections):
    return RunConfig(**sections)


@pytest.mark.parametrize("bad,flag", [
    (dict(prune=PruneConfig(strategy="glob")), "--strategy"),
    (dict(model=ModelConfig(init="foo")), "--init"),
    (dict(data=DataConfig(valid_fraction=0.0)), "--valid_fraction"),
    (dict(data=DataConfig(valid_fraction=1.0)), "--valid_fraction"),
    (dict(model=ModelConfig(embedding_dim=0)), "--embedding_dim"),
    (dict(model=ModelConfig(filters=0)), "--filters"),
    (dict(data=DataConfig(split_seed=-1)), "--split_seed"),
    (dict(data=DataConfig(dataset="mnist")), "--dataset"),
    (dict(prune=PruneConfig(prune_fraction=1.0)), "--prune_fraction"),
    (dict(prune=PruneConfig(levels=-1)), "--levels"),
    (dict(train=TrainConfig(learning_rate=float("nan"))), "--learning_rate"),
    (dict(train=TrainConfig(epochs=0)), "--epochs"),
    (dict(model=ModelConfig(filter_sizes="3,x")), "--filter_sizes"),
    (dict(experiment=ExperimentConfig(branches="ticket,lucky")), "--branches"),
    (dict(experiment=ExperimentConfig(late_rewind=True, rewind_step="3 epochs")), "--rewind_step"),
    (dict(experiment=ExperimentConfig(late_rewind=True, finetune=True)), "--late_rewind"),
])
def test_every_bad_setting_fails_validation_naming_its_flag(bad, flag):
    with pytest.raises(UserError) as e:
        cfg(**bad).validate()
    assert str(e.value).startswith(flag) or flag in str(e.value)
    assert "\n" not in str(e.value)


def test_defaults_and_presets_validate():
    assert RunConfig().validate() == []
    assert cfg(model=ModelConfig(model="lstm"), experiment=ExperimentConfig(late_rewind=True)).validate() == []


def test_a_setting_that_does_not_apply_is_noted_and_leaves_the_identity_alone():
    base = RunConfig()
    stray = cfg(experiment=ExperimentConfig(rewind_step="438it"), model=ModelConfig(hidden=64))
    notes = stray.validate()
    assert any("--rewind_step=438it" in n and "--late_rewind" in n for n in notes)
    assert any("--hidden=64" in n and "--model=lstm" in n for n in notes)
    assert stray.identity() == base.identity()
    late = cfg(experiment=ExperimentConfig(late_rewind=True, rewind_step="438it"))
    assert late.identity() != base.identity()


def test_identity_resolves_defaults_and_ignores_how_much_to_run_and_where_data_lives():
    base = RunConfig()
    assert cfg(data=DataConfig(vocab_size=50_000)).identity() == base.identity()
    assert cfg(data=DataConfig(vocab_size=25_000)).identity() != base.identity()
    assert cfg(data=DataConfig(data_dir="/a/imdb", cache_dir="/c")).identity() == base.identity()
    assert cfg(prune=PruneConfig(levels=3), experiment=ExperimentConfig(replicates=3, branches="ticket")) \
        .identity() == base.identity()
    lstm = ModelConfig(model="lstm")
    assert cfg(model=lstm, data=DataConfig(vocab_size=25_000)).identity() == cfg(model=lstm).identity()
    assert cfg(model=lstm, data=DataConfig(vocab_size=50_000)).identity() != cfg(model=lstm).identity()
    # Only what differs from the defaults names a run, so a setting added later (at its default) renames none.
    assert set(RunConfig().identity()) == {"data.dataset", "model.model", "train.threads"}
    assert cfg(train=TrainConfig(threads=1)).identity() != cfg(train=TrainConfig(threads=2)).identity()


def test_rewind_points():
    assert RunConfig().rewind() == Rewind(Step())
    late = cfg(experiment=ExperimentConfig(late_rewind=True, rewind_step="1ep20it")).rewind()
    assert late.step == Step(1, 20) and late.step.iteration(100) == 120 and not late.end
    assert cfg(experiment=ExperimentConfig(finetune=True)).rewind().end
    assert "θ0" in RunConfig().rewind().describe()


def test_round_trip_through_a_dict():
    c = cfg(model=ModelConfig(model="lstm", hidden=32), experiment=ExperimentConfig(replicates=2))
    assert RunConfig.from_dict(c.to_dict()) == c
