"""Scenario presets load and validate; bad configs fail naming the key."""

import gymnasium as gym
import pytest

import envs  # noqa: F401
from envs.config import ConfigError, from_dict, list_scenarios, load_scenario

NAMED = ["3c", "apparel_live", "beauty", "food", "promo_heavy", "tight_balance", "fast_fatigue"]


def test_all_named_scenarios_exist_and_load():
    assert set(NAMED) <= set(list_scenarios())
    for name in NAMED:
        cfg = load_scenario(name)
        assert cfg.name == name
        assert 0.3 <= cfg.typical_pool_share <= 0.8, "brief §10: the typical target buys 30-80%"
        assert abs(cfg.breakeven_roi / cfg.typical_target_roi - 1) <= 0.2


def test_breakeven_follows_margin_and_refunds():
    cfg = load_scenario("3c")
    assert cfg.breakeven_roi == pytest.approx(1 / (0.35 * 0.9))
    assert cfg.floor_settlement_roi == pytest.approx(1 / 0.35)
    assert load_scenario("3c", settlement_roi_floor=2.5).floor_settlement_roi == 2.5


def test_stress_variants_inherit_their_base():
    base, heavy = load_scenario("3c"), load_scenario("promo_heavy")
    assert heavy.aov_cny == base.aov_cny
    assert len(heavy.promo_peak_days) == 2 and heavy.promo_peak_traffic > base.promo_peak_traffic


@pytest.mark.parametrize("overrides,key", [
    ({"margn": 0.3}, "margn"),
    ({"margin": "high"}, "margin"),
    ({"margin": 1.5}, "margin"),
    ({"episode_days": 10.5}, "episode_days"),
    ({"learning_enabled": 1}, "learning_enabled"),
    ({"weekday_traffic": [1.0, 1.0]}, "weekday_traffic"),
    ({"refund_kernel": [0.5] * 7}, "refund_kernel"),
    ({"objective": "revenue"}, "objective"),
    ({"promo_peak_days": [-1]}, "promo_peak_days"),
    ({"pool_sigma": float("nan")}, "pool_sigma"),
])
def test_bad_values_name_the_key(overrides, key):
    with pytest.raises(ConfigError, match=key):
        load_scenario("3c", **overrides)


def test_unknown_scenario_lists_known(tmp_path):
    with pytest.raises(ConfigError, match="known: .*3c"):
        load_scenario("mars")
    bad = tmp_path / "bad.yaml"
    bad.write_text("aov_cny: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_scenario(bad)
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_scenario(bad)


def test_gym_make_passes_overrides_and_rejects_unknown():
    env = gym.make("QianchuanBidding-v1", scenario="beauty", episode_days=10)
    assert env.unwrapped.config.episode_days == 10
    with pytest.raises(ConfigError, match="budjet"):
        gym.make("QianchuanBidding-v1", budjet=3)


def test_round_trip_and_hash():
    cfg = load_scenario("food")
    again = from_dict(cfg.to_dict())
    assert again == cfg and again.hash() == cfg.hash()
    assert cfg.replace(margin=0.41).hash() != cfg.hash()


def test_unseen_markets_name_a_base_and_a_reason_and_differ_from_it():
    from envs.config import is_unseen, list_unseen

    markets = list_unseen()
    assert len(markets) >= 8
    for market in markets:
        config, base = load_scenario(market.preset), load_scenario(market.base)
        assert config.name == market.name and market.name.startswith("unseen_")
        assert is_unseen(market.preset) and is_unseen(config) and not is_unseen(base)
        assert len(market.reason) > 20, market.name
        changed = {k for k, v in config.to_dict().items() if base.to_dict()[k] != v}
        assert changed - {"name"}, f"{market.name} is its base under another name"
    assert not any(is_unseen(name) for name in list_scenarios())


def test_an_unseen_market_without_a_reason_or_base_is_refused(tmp_path, monkeypatch):
    import envs.config as config

    monkeypatch.setattr(config, "UNSEEN_DIR", tmp_path)
    (tmp_path / "m.yaml").write_text("base: 3c\npool_mean_roi: 2.5\n")
    with pytest.raises(ConfigError, match="'reason' must say why"):
        config.list_unseen()
    (tmp_path / "m.yaml").write_text("base: atlantis\nreason: a market that is not there\n")
    with pytest.raises(ConfigError, match="'base' must name one of the named scenarios"):
        config.list_unseen()


def _load_ppo(path):
    from agents.training.config import load_train_config

    return load_train_config(path)


@pytest.mark.parametrize("load, what, twice", [
    (load_scenario, "scenario", "margin: 0.3\nmargin: 0.4\n"),
    (_load_ppo, "PPO config", "ppo:\n  n_steps: 64\n  n_steps: 32\n"),
], ids=["scenario", "ppo"])
def test_a_key_given_twice_or_a_looping_base_chain_is_an_error(tmp_path, load, what, twice):
    """One reader (envs.presets) for every preset: a key given twice is refused, not silently
    overridden; a ``base:`` chain that loops names the preset; a base must be a name."""
    (tmp_path / "twice.yaml").write_text(twice)
    with pytest.raises(ConfigError, match="is given twice"):
        load(tmp_path / "twice.yaml")
    (tmp_path / "a.yaml").write_text(f"base: {tmp_path / 'b.yaml'}\n")
    (tmp_path / "b.yaml").write_text(f"base: {tmp_path / 'a.yaml'}\n")
    with pytest.raises(ConfigError, match=f"{what} 'a': 'base' chain loops"):
        load(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("base: [3c]\n")
    with pytest.raises(ConfigError, match="base must be a preset name"):
        load(tmp_path / "c.yaml")


def test_preset_notes_are_not_market_parameters():
    """``reason`` and ``training_preset`` are read from a scenario's file, never as fields:
    the scenario's config (and its hash) is its market alone."""
    from envs.config import PRESET_NOTES

    heavy = load_scenario("promo_heavy")
    assert not set(PRESET_NOTES) & set(heavy.to_dict())


# ------------------------------------------------------------------------------ hardening (#17)
@pytest.mark.parametrize("value", ["inf", "-inf", "nan"])
@pytest.mark.parametrize("load", [load_scenario, _load_ppo], ids=["scenario", "ppo"])
def test_non_finite_numbers_are_refused_by_the_shared_coercion(tmp_path, load, value):
    """Every float a preset reads passes one check (envs.presets.coerce_value): ``.inf`` in a
    PPO preset used to train until it crashed mid-run."""
    from envs.presets import coerce_value

    with pytest.raises(ConfigError, match="x: must be a finite number"):
        coerce_value("x", float(value), float)
    with pytest.raises(ConfigError, match="must be a finite number"):
        coerce_value("x", [1.0, float(value)], tuple[float, ...])
    written = {"inf": ".inf", "-inf": "-.inf", "nan": ".nan"}[value]  # YAML's spelling
    key = "margin" if load is load_scenario else "ppo.ent_coef"
    text = f"margin: {written}\n" if load is load_scenario else f"ppo:\n  ent_coef: {written}\n"
    (tmp_path / "p.yaml").write_text(text)
    with pytest.raises(ConfigError, match=f"{key}: must be a finite number"):
        load(tmp_path / "p.yaml")


@pytest.mark.parametrize("load", [load_scenario, _load_ppo], ids=["scenario", "ppo"])
def test_an_empty_or_binary_preset_is_a_named_error(tmp_path, load):
    """An empty file configured nothing and trained with the defaults; a binary one raised
    UnicodeDecodeError. Both name the file."""
    for text in ("", "# only a comment\n", "~\n"):
        (tmp_path / "empty.yaml").write_text(text)
        with pytest.raises(ConfigError, match=r"empty\.yaml: empty \(no keys\)"):
            load(tmp_path / "empty.yaml")
    (tmp_path / "binary.yaml").write_bytes(bytes(range(256)) * 2)
    with pytest.raises(ConfigError, match=r"binary\.yaml: not a YAML text file"):
        load(tmp_path / "binary.yaml")
    (tmp_path / "deep.yaml").write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match="nested too deeply"):
        load(tmp_path / "deep.yaml")


@pytest.mark.parametrize("levels, why", [
    (7, r"aliases \(\*name\) expand it to [0-9,]{9,} values"),  # refused as read
    (5, "expected a whole number, got"),  # small enough to read: the excerpt keeps it short
], ids=["beyond_the_limit", "within_the_limit"])
def test_an_alias_bomb_gives_a_short_error_naming_the_key(tmp_path, levels, why):
    """A 7-level bomb under policy.net_arch gave a 17 MB error line (its repr)."""
    from conftest import alias_bomb

    (tmp_path / "bomb.yaml").write_text(alias_bomb(levels))
    assert len(alias_bomb(levels)) < 400
    with pytest.raises(ConfigError, match=why) as caught:
        _load_ppo(tmp_path / "bomb.yaml")
    message = str(caught.value)
    assert "policy.net_arch" in message and len(message) < 500, message


def test_an_alias_that_holds_itself_is_refused(tmp_path):
    (tmp_path / "loop.yaml").write_text("env:\n  overrides: &a {margin: *a}\n")
    with pytest.raises(ConfigError, match="env.overrides: an alias .* hold itself"):
        _load_ppo(tmp_path / "loop.yaml")


def test_errors_quote_a_bounded_excerpt_of_the_value():
    """One helper (envs.excerpt) bounds every quoted value, whatever its size or shape."""
    from envs.excerpt import EXCERPT_CHARS, excerpt

    nested: list = [1] * 9
    for _ in range(6):
        nested = [nested] * 9
    for value in (nested, "x" * 10**6, {f"k{i}": i for i in range(10**4)}, 3.5, None):
        assert len(excerpt(value)) <= EXCERPT_CHARS
    assert excerpt("3c") == "'3c'" and excerpt(None) == "None"
    with pytest.raises(ConfigError) as caught:
        load_scenario("3c", margin="x" * 10**6)
    assert len(str(caught.value)) < 200 and "margin" in str(caught.value)
    with pytest.raises(ConfigError, match="unknown scenario key") as caught:
        load_scenario("3c", **{"y" * 10**5: 1})
    assert len(str(caught.value)) < 200


@pytest.mark.parametrize("scenario", [None, 3, ["3c"]])
def test_a_scenario_that_is_not_a_name_path_or_config_is_a_named_error(scenario):
    with pytest.raises(ConfigError, match="scenario: expected a preset name, a YAML path"):
        load_scenario(scenario)
    with pytest.raises(ConfigError, match="scenario: expected a preset name"):
        gym.make("QianchuanBidding-v1", scenario=scenario)
