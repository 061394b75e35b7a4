"""The same code on a CUDA device (skipped where there is none, as in CI).

The project's rule (docs/concepts.md): code runs on the CPU, a GPU is a bonus. These checks run
on a machine with a GPU: the deterministic solvers give the CPU's answer on the GPU, and the
learners, the online loop and the experiment runner (worker processes sharing the GPU) run end
to end on it.
"""

import json
import math

import pytest
import torch

from skyshare.experiments import catn_fig4
from skyshare.experiments import multiband_capacity as mc
from skyshare.experiments.jobs import Execution
from skyshare.solvers.association_dcd import associate_dcd
from skyshare.solvers.fp import fp
from skyshare.solvers.wmmse import wmmse
from solver_cases import catn_problem
from test_experiment_catn_fig4 import TINY as CATN_TINY
from test_experiment_multiband import TINY as MULTIBAND_TINY

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _to(problem, device):
    return type(problem)(
        H=problem.H.to(device),
        G=problem.G.to(device),
        serving=problem.serving.to(device),
        p_max=problem.p_max,
        i_max=problem.i_max,
    )


@pytest.mark.parametrize("solver", [wmmse, fp])
def test_solvers_give_the_cpu_answer_on_the_gpu(solver):
    problem = catn_problem(4, seed=3)
    cpu = solver(problem, max_iter=30)
    gpu = solver(_to(problem, "cuda"), max_iter=30)
    assert gpu.w.device.type == "cuda"
    assert torch.allclose(gpu.sum_rate.cpu(), cpu.sum_rate, rtol=1e-6)
    assert torch.allclose(gpu.au_interference.cpu(), cpu.au_interference, rtol=1e-5, atol=0)


def test_dcd_association_gives_the_cpu_answer_on_the_gpu():
    problem = catn_problem(4, seed=5)
    cpu = associate_dcd(problem.H, p_max=problem.p_max)
    gpu = associate_dcd(problem.H.cuda(), p_max=problem.p_max)
    assert torch.equal(gpu.serving.cpu(), cpu.serving)


def test_catn_schemes_train_on_the_gpu_in_worker_processes(tmp_path):
    schemes = ["D3QN-CUP", "D3QN-PPO", "SC-WMMSE"]
    execution = Execution(device="cuda", workers=2, progress=False)
    preset = catn_fig4.Preset(**CATN_TINY)
    summary = catn_fig4.EXPERIMENT.run(tmp_path, preset, schemes=schemes, execution=execution)
    assert {r["scheme"] for r in summary["results"].values()} == set(schemes)
    for job_dir in (tmp_path / "jobs").iterdir():
        assert json.loads((job_dir / "job.json").read_text())["device"] == "cuda"
    for result in summary["results"].values():
        assert result["slots"] == CATN_TINY["n_slots"]
        assert math.isfinite(result["mean_sum_rate_last"]) and result["mean_sum_rate_last"] > 0
        assert all(math.isfinite(x) for x in result["mean_rho_over_imax_last"])


def test_multiband_td3_mix_trains_on_the_gpu(tmp_path):
    summary = mc.FIG7.run(
        tmp_path,
        mc.Preset(**MULTIBAND_TINY["multiband-fig7"]),
        schemes=["TD3-MIX", "FLWF"],
        execution=Execution(device="cuda", progress=False),
    )
    for result in summary["results"].values():
        assert math.isfinite(result["capacity_per_cell"]) and result["capacity_per_cell"] > 0
