"""Shared pytest fixtures: the small real photo set in tests/data/real, the big files in ../shared, and a clean offline environment."""
import os
from pathlib import Path
import pytest

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('MPLBACKEND', 'Agg')

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT/'tests'/'data'/'real' # real camera-trap photos shipped with the repo (see tests/data/real/README.md)
SHARED_DATA = Path(os.environ.get('IWILDCAM_SHARED_DATA', ROOT.parent/'shared'/'data'))

def shared_dir(name):
    "Folder `name` under ../shared/data (big files, benchmarks), or skip the test cleanly when it is absent."
    d = SHARED_DATA/name
    if not d.is_dir(): pytest.skip(f'{d} not found (the big real data lives in ../shared, outside the repo)')
    return d

@pytest.fixture
def real_dir(): return REAL

@pytest.fixture
def speciesnet_dir(): return REAL/'speciesnet'

@pytest.fixture
def ena24_dir(): return REAL/'ena24'

@pytest.fixture
def fullres_dir(): return shared_dir('fullres_cct')
