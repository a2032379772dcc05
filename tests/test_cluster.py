"""`iwildcam-nb predict --cluster ADDRESS`: the checkpoints predicted as tasks on a Dask cluster of two worker processes give
the same bytes as one process, and a stopped cluster run resumes; without Dask, one clear error line."""
import subprocess, sys
import pytest

@pytest.fixture(scope='module')
def world(tmp_path_factory):
    from test_infer import shared_world
    return shared_world(tmp_path_factory)

def test_cluster_predicts_the_same_bytes_and_resumes(world, tmp_path):
    pytest.importorskip('distributed')
    from distributed import Client, LocalCluster
    from test_infer import cli, finish, predict_args, reference_run, same_outputs
    ref, _ = reference_run(world)
    out = tmp_path/'o'
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
         Client(cluster) as client:
        args = predict_args(world, out, '--checkpoint_every', 4, '--cluster', cluster.scheduler_address)
        rc, _, err = finish(cli(*args))
        assert rc == 0, err
        same_outputs(ref, out)
        loaded = client.run(lambda dask_worker: hasattr(dask_worker, '_iwildcam_models'))
        assert list(loaded.values()) == [True, True], loaded # both workers predicted checkpoints
        parts = sorted((out/'checkpoints').glob('part_*.npz'))
        for p in (parts[0], parts[-1]): p.unlink() # as a cluster run stopped before them would leave it
        rc, _, err = finish(cli(*args))
    assert rc == 0 and f'resuming: {len(parts) - 2} of {len(parts)} checkpoints already done' in err, err
    same_outputs(ref, out)

def test_cluster_without_dask_is_one_clear_line(world, tmp_path):
    "A machine without the `cluster` extra (Dask made unimportable): one `error:` line naming the extra, nothing written."
    from test_infer import predict_args
    code = "import sys; sys.modules['distributed'] = None; from iwildcam_nb.cli import main; sys.exit(main())"
    args = predict_args(world, tmp_path/'o', '--cluster', 'tcp://127.0.0.1:8786')
    r = subprocess.run([sys.executable, '-c', code, *map(str, args)], capture_output=True, text=True, timeout=300)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert r.returncode == 2 and 'Traceback' not in r.stderr, r.stderr
    assert lines[-1].startswith('error: ') and 'pip install "iwildcam_nb[cluster]"' in lines[-1], r.stderr
    assert not (tmp_path/'o').exists()
