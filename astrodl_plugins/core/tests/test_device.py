# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Tests of device dispatch."""

import pytest

from astrodl_plugins.core.device import available_gpus, resolve_device
from astrodl_plugins.exceptions import DeviceNotAvailableError

no_gpu = pytest.mark.skipif(available_gpus() > 0,
                            reason='a GPU is visible to the backend')


class TestAvailableGPUs:
    def test_count(self):
        n = available_gpus()
        assert isinstance(n, int) and n >= 0


class TestResolveDevice:
    @no_gpu
    @pytest.mark.parametrize('device', ['auto', 'AUTO', ' auto '])
    def test_auto_without_gpu(self, device):
        assert resolve_device(device) == 'cpu:0'

    @no_gpu
    def test_default_without_gpu(self):
        assert resolve_device() == 'cpu:0'

    @pytest.mark.skipif(available_gpus() == 0, reason='no GPU visible')
    def test_auto_with_gpu(self):
        assert resolve_device('auto') == 'gpu:0'
        assert resolve_device('gpu') == 'gpu:0'

    @pytest.mark.parametrize('device', ['cpu', 'CPU', 'cpu:0', 'cpu:1'])
    def test_cpu(self, device):
        assert resolve_device(device) == 'cpu:0'

    @no_gpu
    @pytest.mark.parametrize('device', ['gpu', 'gpu:0', 'gpu:3'])
    def test_gpu_without_gpu(self, device):
        with pytest.raises(DeviceNotAvailableError,
                           match=rf"device='{device}' was requested but the "
                                 r'.* backend sees 0 GPU\(s\)'):
            resolve_device(device)

    def test_gpu_index_too_large(self):
        device = f'gpu:{available_gpus()}'
        with pytest.raises(DeviceNotAvailableError,
                           match=rf"device='{device}' was requested"):
            resolve_device(device)

    def test_error_is_value_error(self):
        assert issubclass(DeviceNotAvailableError, ValueError)

    @pytest.mark.parametrize('device', ['tpu', 'auto:1', 'gpu:', 'gpu:-1',
                                        'cuda', '', 'gpu0'])
    def test_invalid(self, device):
        with pytest.raises(ValueError,
                           match=r"device must be 'auto', 'cpu', 'gpu' or "
                                 r"'gpu:N', got"):
            resolve_device(device)

    @pytest.mark.parametrize('device', [None, 0, 1.0, ['cpu']])
    def test_not_a_string(self, device):
        with pytest.raises(TypeError, match='device must be a string'):
            resolve_device(device)
