"""Reproductions of the seeds' figures and tables: jobs, executors, run directories, plots."""

from skyshare.experiments.jobs import Job, JobFailed, job_folder, load_result, run_jobs

__all__ = ["Job", "JobFailed", "job_folder", "load_result", "run_jobs"]
