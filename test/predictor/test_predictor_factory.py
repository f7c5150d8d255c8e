"""PredictorSpec validation, ``module:attr`` loading and create_predictor."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from vggt_mapper.predictor import (
    create_predictor,
    load_object,
    load_predictor,
    LoadObjectError,
    Predictor,
    PredictorSpec,
    PredictorSpecError,
    WindowPrediction,
)

PLUGIN_SOURCE = '''
from vggt_mapper.predictor.base import WindowPrediction


class EchoPredictor:
    """A stand-in predictor (its answer is never computed in these tests)."""

    def __init__(self, label='default'):
        self.label = label

    def predict(self, frames_rgb):
        raise NotImplementedError


def make_predictor():
    return EchoPredictor('from factory')


INSTANCE = EchoPredictor('instance')
NOT_A_PREDICTOR = 42


def needs_argument(label):
    return EchoPredictor(label)


def makes_wrong_thing():
    return 'not a predictor'
'''


@pytest.fixture
def plugin_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Write an importable module of predictors into tmp_path; return its name."""
    (tmp_path / 'h3_test_plugins.py').write_text(PLUGIN_SOURCE, encoding='utf-8')
    (tmp_path / 'h3_broken_plugin.py').write_text('import h3_no_such_dependency\n',
                                                  encoding='utf-8')
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ('h3_test_plugins', 'h3_broken_plugin'):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return 'h3_test_plugins'


@pytest.mark.parametrize(('kwargs', 'message'), [
    ({'model': 'vggt-2b'}, "model must be one of \\('vggt-1b', 'tiny'\\)"),
    ({'checkpoint': '  '}, 'checkpoint must be'),
    ({'device': 'gpu'}, "device must be 'auto'"),
    ({'device': 'cuda:x'}, "device must be 'auto'"),
    ({'preprocess_mode': 'stretch'}, 'preprocess_mode must be one of'),
    ({'predictor': 'no_colon'}, "expected 'module:attr'"),
    ({'predictor': 'mod:'}, "expected 'module:attr'"),
    ({'predictor': 'bad-name:x'}, "expected 'module:attr'"),
    ({'remote_url': 'ftp://host'}, 'remote_url must start with http'),
    ({'predictor': 'a:b', 'remote_url': 'http://h'}, 'not both'),
    ({'remote_url': 'http://h', 'checkpoint': 'facebook/VGGT-1B'}, 'only applies to the local'),
    ({'token': ''}, 'token must not be empty'),
    ({'remote_timeout_s': 0}, 'remote_timeout_s must be > 0'),
])
def test_spec_validation_errors(kwargs, message) -> None:
    with pytest.raises(PredictorSpecError, match=message):
        PredictorSpec(**kwargs)


def test_spec_defaults_kinds_and_secret_token() -> None:
    spec = PredictorSpec(token='hf_secret')
    assert (spec.model, spec.checkpoint, spec.device, spec.preprocess_mode) == (
        'vggt-1b', None, 'auto', 'crop')
    assert spec.kind == 'local'
    assert 'hf_secret' not in repr(spec)
    assert PredictorSpec(predictor='m:a').kind == 'custom'
    assert PredictorSpec(remote_url='https://example.org/').kind == 'remote'
    assert PredictorSpec(device='cuda:1').device == 'cuda:1'


def test_load_object_finds_attributes(plugin_module) -> None:
    assert load_object(f'{plugin_module}:NOT_A_PREDICTOR') == 42
    assert load_object('vggt_mapper.predictor.base:WindowPrediction') is WindowPrediction
    assert load_object('vggt_mapper.predictor.base:ImageMapping.to_original') is not None


def test_load_object_errors_say_what_is_missing(plugin_module) -> None:
    with pytest.raises(LoadObjectError, match="module 'h3_nowhere' not found"):
        load_object('h3_nowhere.sub:thing')
    with pytest.raises(LoadObjectError, match="needs the missing module 'h3_no_such_dependency'"):
        load_object('h3_broken_plugin:thing')
    with pytest.raises(LoadObjectError, match=f"'{plugin_module}' has no attribute 'Missing'"):
        load_object(f'{plugin_module}:Missing')
    with pytest.raises(LoadObjectError,
                       match="'h3_test_plugins.EchoPredictor' has no attribute 'nope'"):
        load_object(f'{plugin_module}:EchoPredictor.nope')
    with pytest.raises(LoadObjectError, match="expected 'module:attr'"):
        load_object('justamodule')


def test_load_predictor_accepts_class_factory_and_instance(plugin_module) -> None:
    from_class = load_predictor(f'{plugin_module}:EchoPredictor')
    assert isinstance(from_class, Predictor) and not isinstance(from_class, type)
    assert from_class.label == 'default'
    assert load_predictor(f'{plugin_module}:make_predictor').label == 'from factory'
    assert load_predictor(f'{plugin_module}:INSTANCE').label == 'instance'


def test_load_predictor_refuses_non_predictors(plugin_module) -> None:
    with pytest.raises(LoadObjectError, match='is a int, not a Predictor'):
        load_predictor(f'{plugin_module}:NOT_A_PREDICTOR')
    with pytest.raises(LoadObjectError, match='callable with no arguments'):
        load_predictor(f'{plugin_module}:needs_argument')
    with pytest.raises(LoadObjectError, match='gave a str, which is not a Predictor'):
        load_predictor(f'{plugin_module}:makes_wrong_thing')


def test_create_custom_predictor(plugin_module) -> None:
    predictor = create_predictor(PredictorSpec(predictor=f'{plugin_module}:make_predictor'))
    assert predictor.label == 'from factory'  # type: ignore[attr-defined]


def test_create_remote_predictor_does_not_connect() -> None:
    from vggt_mapper.predictor.remote import RemotePredictor

    predictor = create_predictor(PredictorSpec(remote_url='http://127.0.0.1:9/',
                                               remote_timeout_s=3.5))
    assert isinstance(predictor, RemotePredictor)
    assert predictor.url == 'http://127.0.0.1:9/'
    assert predictor.timeout_s == 3.5


def test_create_tiny_vggt_predictor_logs_meaningless_geometry(caplog) -> None:
    from vggt_mapper.predictor import VGGTPredictor

    predictor = create_predictor(PredictorSpec(model='tiny', device='cpu',
                                               preprocess_mode='pad'))
    assert isinstance(predictor, VGGTPredictor)
    assert predictor.preprocess_mode == 'pad'
    assert 'MEANINGLESS' in caplog.text
    # Deterministic weights: two builds are identical.
    again = create_predictor(PredictorSpec(model='tiny', device='cpu'))
    for (key, first), (_, second) in zip(predictor.model.state_dict().items(),
                                         again.model.state_dict().items(), strict=True):
        assert np.array_equal(first.numpy(), second.numpy()), key


def test_create_from_missing_local_checkpoint_fails_clearly(tmp_path: Path) -> None:
    from vggt_mapper.model import WeightsError

    missing = tmp_path / 'nothing.safetensors'
    with pytest.raises(WeightsError):
        create_predictor(PredictorSpec(model='tiny', checkpoint=str(missing), device='cpu'))


def test_importing_the_package_does_not_import_torch() -> None:
    code = textwrap.dedent("""
        import sys
        import vggt_mapper.predictor as predictor
        spec = predictor.PredictorSpec(model='tiny')
        assert 'torch' not in sys.modules, 'torch imported'
        predictor.VGGTPredictor
        assert 'torch' in sys.modules
    """)
    subprocess.run([sys.executable, '-c', code], check=True)


def test_predictor_protocol_is_structural() -> None:
    class Minimal:
        def predict(self, frames_rgb: Sequence[np.ndarray]) -> WindowPrediction:
            raise NotImplementedError

    assert isinstance(Minimal(), Predictor)
