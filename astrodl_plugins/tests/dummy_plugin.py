# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""A stand-in built-in plugin used by the registry tests."""

from astrodl_plugins.core import SourceStampEstimator
from astrodl_plugins.registry import hookimpl

__all__ = ['DummyConstant', 'DummyPreset', 'PRESET_DIRECTORY']

PRESET_DIRECTORY = 'dummy-preset-directory'


class DummyConstant(SourceStampEstimator):
    """Predicts a constant; built with its default parameters."""

    name = 'dummy-constant'
    task = 'regression'
    version = '1.0'
    description = 'Always predicts the same value.'

    def __init__(self, value=0.0):
        self.value = value

    @classmethod
    def from_preset(cls, preset):
        return cls()


class DummyPreset(SourceStampEstimator):
    """An estimator that is loaded from its default preset."""

    name = 'dummy-preset'
    task = 'classification'
    version = None
    description = None
    default_preset = 'dummy-default'

    def __init__(self, preset=None):
        self.preset = preset

    @classmethod
    def from_preset(cls, preset):
        return cls(preset=preset)


@hookimpl
def astrodl_register_estimators():
    return [DummyConstant, DummyPreset]


@hookimpl
def astrodl_register_presets():
    return {'dummy-default': PRESET_DIRECTORY}
