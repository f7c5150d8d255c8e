"""
The shipped sample sequence (``vggt_mapper/data/sample``) and a predictor that knows it.

``sample_predictor`` is a zero-argument factory, so the CLI can map the sample without model
weights: ``vggt-mapper map vggt_mapper/data/sample -o OUT
--predictor vggt_mapper.synthetic.sample:sample_predictor``. It recognises the sample's JPEG
frames by their thumbnails and answers from the ground truth (default noise).
"""

from __future__ import annotations

from vggt_mapper.synthetic.predictor import NOISE_LEVELS, SyntheticPredictor, SyntheticSequence

__all__ = ['SAMPLE_FRAMES', 'SAMPLE_HW', 'SAMPLE_STEP_M', 'sample_predictor', 'sample_sequence']

SAMPLE_FRAMES = 40
SAMPLE_STEP_M = 0.04
SAMPLE_HW = (240, 320)
SAMPLE_FPS = 30


def sample_sequence(num_frames: int = SAMPLE_FRAMES, step_m: float = SAMPLE_STEP_M
                    ) -> SyntheticSequence:
    """
    Return the sample's camera path (an orbit in the default room), thumbnails on.

    :param num_frames: number of frames.
    :param step_m: metres travelled per frame.
    :return: the sequence (frames are rendered on demand).
    """
    return SyntheticSequence.orbit(num_frames, step_m=step_m, height=SAMPLE_HW[0],
                                   width=SAMPLE_HW[1], match_thumbnails=True)


def sample_predictor(model_width: int = 518) -> SyntheticPredictor:
    """
    Return a ground-truth predictor for the shipped sample (renders it once to know it).

    :param model_width: model image width (a multiple of 14; VGGT's is 518).
    :return: the predictor (default noise, seed 0).
    """
    sequence = sample_sequence()
    for index in range(len(sequence)):
        sequence.frame(index)
    return SyntheticPredictor(sequence, NOISE_LEVELS['default'], model_width=model_width,
                              seed=0)
