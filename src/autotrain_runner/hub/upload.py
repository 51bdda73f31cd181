"""The upload, in one commit: the one place Hub failures become errors that say what to do next."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from autotrain_runner.errors import ConfigError, HubError, RunnerError
from autotrain_runner.hub.files import stale
from autotrain_runner.hub.plan import Plan
from autotrain_runner.hub.repo import Token
from autotrain_runner.redact import Redactor, hide_credentials


def upload(plan: Plan, token: Token) -> str:
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

    api = HfApi(token=token.secret)
    repo_id = plan.repo.value
    with hub_errors(repo_id, token):
        api.create_repo(repo_id, private=True if plan.private else None, exist_ok=True)
        if plan.private and not api.model_info(repo_id).private:
            raise ConfigError(
                f"--private: {repo_id} exists and is public; nothing was uploaded. Make it private in its "
                "settings on the Hub, or push without --private"
            )
        names = {f.name for f in plan.files}
        operations: list[Any] = [CommitOperationAdd(f.name, f.source) for f in plan.files]
        operations += [CommitOperationDelete(name) for name in stale(api.list_repo_files(repo_id), names)]
        commit = api.create_commit(
            repo_id, operations, commit_message=f"{plan.kind} of run {plan.run_id} (autotrain-runner)"
        )
    return commit.commit_url


def require_network() -> None:
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        raise _offline()


def _offline() -> HubError:
    return HubError(
        "push needs network, and HF_HUB_OFFLINE=1 (or TRANSFORMERS_OFFLINE=1) is set: "
        "unset it (`unset HF_HUB_OFFLINE`) to upload; `atr push --dry-run` shows the plan offline"
    )


@contextlib.contextmanager
def hub_errors(repo_id: str, token: Token) -> Iterator[None]:
    try:
        yield
    except RunnerError:
        raise
    except Exception as exc:  # every Hub failure ends here, mapped to what to do next
        raise hub_error(exc, repo_id, token) from exc


def hub_error(exc: Exception, repo_id: str, token: Token) -> RunnerError:
    import httpx2  # huggingface_hub's HTTP client since 2.0
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    redact = Redactor([token.secret])
    owner = repo_id.split("/")[0]
    if isinstance(exc, OfflineModeIsEnabled):
        return _offline()
    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else None
        detail = redact(exc.server_message or str(exc).splitlines()[0])
        if status == 401:
            message = (
                f"the Hub rejected the token from {token.source} (401): make sure you are authenticated: "
                "`huggingface-cli login`, or a valid HF_TOKEN in project.local.env or the environment"
            )
        elif status == 403:
            message = (
                f"the token from {token.source} may not write to {owner} (403): use a token with write access "
                f"(a fine-grained token needs write permission on {owner}), or push to your own namespace "
                "with --repo YOUR-NAME/NAME"
            )
        elif status == 404:
            message = f"{repo_id} not found (404): check the owner ({owner}) in the repo name"
        elif status == 429 or (status or 0) >= 500:
            message = f"the Hub is unavailable or limiting requests (HTTP {status}); try again later"
        else:
            message = f"the Hub refused the upload to {repo_id} (HTTP {status})"
        return HubError(f"{message}; the Hub said: {detail}")
    if isinstance(exc, httpx2.TransportError):  # refused, unresolvable, timed out
        endpoint = hide_credentials(constants.ENDPOINT)  # HF_ENDPOINT may carry a user and password
        return HubError(f"cannot reach {endpoint}: check the network (or HF_ENDPOINT); nothing was uploaded")
    return HubError(f"upload to {repo_id} failed: {type(exc).__name__}: {redact(str(exc))}")
