"""
The server's API equals the official VGGT demo's, endpoint by endpoint.

``official_api.json`` is the expected contract: derived by ``tools/derive_official_api.py``
under gradio 5.17.1 from the official demo's interface (provenance inside the file).
"""

from __future__ import annotations

import json
from pathlib import Path
import re

from app_helpers import LiveServer, load_compact

compact = load_compact()

OFFICIAL = json.loads((Path(__file__).parent / 'official_api.json').read_text())

# Differences that come from the Gradio version, not from the app: output labels that Gradio
# generates from component ids, and Gradio 6's shorter Gallery output type.
_AUTO_LABEL = re.compile(r'value_\d+')


def _normalise_returns(returns: list[dict[str, object]]) -> list[dict[str, object]]:
    normalised = []
    for item in returns:
        item = dict(item)
        if _AUTO_LABEL.fullmatch(str(item['label'])):
            item['label'] = '<auto>'
        if item['component'] == 'Gallery':
            item['type'] = '<gallery>'
        normalised.append(item)
    return normalised


def _our_api(live_server: LiveServer) -> dict[str, dict[str, list[dict[str, object]]]]:
    from gradio_client import Client

    client = Client(live_server.url, verbose=False)
    try:
        info = client.view_api(print_info=False, return_format='dict')
    finally:
        client.close()
    return compact(info['named_endpoints'])  # type: ignore[operator, no-any-return]


def test_official_contract_has_the_documented_endpoints() -> None:
    assert OFFICIAL['gradio'] == '5.17.1'
    assert '44b3afbd1869d8bde4894dd8ea1e293112dd5eba' in OFFICIAL['provenance']
    names = list(OFFICIAL['named_endpoints'])
    assert names[:4] == ['/clear_fields', '/update_log', '/gradio_demo', '/lambda']
    assert '/update_visualization_6' in names and '/update_gallery_on_upload_1' in names


def test_every_official_endpoint_has_the_same_parameters(live_server: LiveServer) -> None:
    ours = _our_api(live_server)
    for name, official in OFFICIAL['named_endpoints'].items():
        assert name in ours, f'{name} is missing from our API'
        assert ours[name]['parameters'] == official['parameters'], name


def test_every_official_endpoint_has_the_same_outputs(live_server: LiveServer) -> None:
    ours = _our_api(live_server)
    for name, official in OFFICIAL['named_endpoints'].items():
        assert _normalise_returns(ours[name]['returns']) == \
            _normalise_returns(official['returns']), name


def test_our_own_endpoints_are_named(live_server: LiveServer) -> None:
    ours = _our_api(live_server)
    assert [p['parameter_name'] for p in ours['/reconstruct']['parameters']] == [
        'files', 'conf_thres', 'mask_black_bg', 'mask_white_bg', 'show_cam', 'mask_sky',
        'prediction_mode', 'video_fps']
    assert [p['parameter_name'] for p in ours['/predict_window']['parameters']] == ['images']
    assert set(ours) - set(OFFICIAL['named_endpoints']) == {
        '/reconstruct', '/predict_window', '/set_video_fps'}
