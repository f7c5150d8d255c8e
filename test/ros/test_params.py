"""NodeParams: the node's typed parameters, their validation, and config/mapper.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest

from vggt_mapper.engine.config import MapperConfig
from vggt_mapper.ros.errors import ParameterError
from vggt_mapper.ros.params import check_values, NodeParams, PARAMETERS

ROOT = Path(__file__).resolve().parents[2]


def test_every_parameter_has_a_description_and_a_matching_field() -> None:
    fields = NodeParams.__dataclass_fields__
    assert [spec.name for spec in PARAMETERS] == list(fields)
    for spec in PARAMETERS:
        assert len(spec.description) > 20, spec.name
        assert getattr(NodeParams(), spec.name) == spec.default, spec.name
        if spec.type_name in ('int', 'float') and spec.name != 'scale':
            assert spec.min_value is not None and spec.max_value is not None, spec.name


def test_config_yaml_sets_every_parameter_with_the_right_type() -> None:
    import yaml  # here, not at the top: ruff and ament's import-order disagree on its place

    document = yaml.safe_load((ROOT / 'config' / 'mapper.yaml').read_text())
    values = document['/**']['ros__parameters']
    assert set(values) == {spec.name for spec in PARAMETERS}
    for spec in PARAMETERS:
        # rclpy refuses an int for a double parameter: floats must be written as floats.
        assert type(values[spec.name]) is type(spec.default), spec.name
    NodeParams.from_values(values)  # valid as a whole


def test_maps_to_engine_config() -> None:
    params = NodeParams(window_size=6, overlap=2, scale=2.5, min_parallax_px=4.0, min_gap=2,
                        max_gap=9, conf_percentile=80.0, voxel_size=0.0, max_points=1000,
                        pixel_stride=3)
    config = params.to_mapper_config()
    assert isinstance(config, MapperConfig)
    assert (config.window_size, config.overlap, config.scale) == (6, 2, 2.5)
    assert (config.keyframes.min_parallax_px, config.keyframes.min_gap,
            config.keyframes.max_gap) == (4.0, 2, 9)
    assert (config.map.conf_percentile, config.map.voxel_size, config.map.max_points,
            config.map.pixel_stride) == (80.0, 0.0, 1000, 3)


def test_maps_to_predictor_spec() -> None:
    spec = NodeParams(model='tiny', device='cpu').to_predictor_spec(token='hf_x')
    assert (spec.model, spec.device, spec.checkpoint, spec.remote_url, spec.predictor,
            spec.token) == ('tiny', 'cpu', None, None, None, 'hf_x')
    remote = NodeParams(remote_url='http://gpu-box:7860').to_predictor_spec()
    assert remote.kind == 'remote' and remote.remote_url == 'http://gpu-box:7860'
    local = NodeParams(checkpoint='/weights/model.safetensors').to_predictor_spec()
    assert local.kind == 'local' and local.checkpoint == '/weights/model.safetensors'


@pytest.mark.parametrize(('values', 'message'), [
    ({'window_size': 4, 'overlap': 4}, 'overlap'),
    ({'min_gap': 5, 'max_gap': 2}, 'max_gap'),
    ({'window_size': 1}, "'window_size' must be >= 2"),
    ({'conf_percentile': 101.0}, "'conf_percentile' must be <= 100"),
    ({'publish_tf': 'map_to_base'}, 'must be one of map_to_camera, map_to_odom, none'),
    ({'drop_policy': 'random'}, 'drop_oldest'),
    ({'queue_length': 2.0}, "'queue_length' must be a int"),
    ({'save_on_shutdown': 1}, 'must be a bool'),
    ({'map_frame': ''}, 'must not be empty'),
    ({'first_window_size': 2, 'overlap': 2, 'window_size': 4}, 'first_window_size'),
    ({'image_qos_reliability': 'system_default'}, 'best_effort, reliable'),
    ({'device': 'tpu'}, 'device'),
    ({'remote_url': 'http://host:7860', 'checkpoint': 'a/b'}, 'checkpoint'),
    ({'not_a_parameter': 1}, 'unknown parameter'),
])
def test_invalid_values_are_refused_with_the_name(values: dict[str, object],
                                                  message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        NodeParams.from_values(values)


def test_runtime_changes_only_for_dynamic_parameters() -> None:
    params = NodeParams()
    assert params.with_changes({'output_dir': '/tmp/maps'}).output_dir == '/tmp/maps'
    assert params.with_changes({'tf_timeout_s': 1}).tf_timeout_s == 1.0  # int accepted
    with pytest.raises(ParameterError, match='fixed while the node is configured'):
        params.with_changes({'window_size': 4})
    with pytest.raises(ParameterError, match="'tf_timeout_s' must be <= 5"):
        params.with_changes({'tf_timeout_s': 9.0})


def test_first_window_size_is_capped_at_the_window_and_zero_means_a_full_one() -> None:
    assert NodeParams(window_size=16, first_window_size=8).to_mapper_config(
    ).first_window_size == 8
    assert NodeParams(window_size=4, overlap=2).to_mapper_config().first_window_size == 4
    assert NodeParams(first_window_size=0).to_mapper_config().first_window_size is None


def test_values_alone_are_checked_while_unconfigured() -> None:
    check_values({'window_size': 4, 'overlap': 6, 'use_sim_time': True})  # judged together later
    with pytest.raises(ParameterError, match="'window_size' must be >= 2"):
        check_values({'window_size': 1})


def test_output_path_expands_user() -> None:
    assert NodeParams(output_dir='~/maps').output_path == Path.home() / 'maps'
