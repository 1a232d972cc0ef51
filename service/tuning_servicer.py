"""The TuningService servicer: read the request, call JobsApi, map the answer."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import grpc
from google.protobuf import empty_pb2

from core.domain.job import Job
from service.auth import current_tenant
from service.convert import dataset_to_proto, job_to_proto
from service.create_preparation import CreateCall, read_head
from service.datasets_api import DatasetsApi
from service.errors import mapped_errors, mapped_stream_errors
from service.estimates import set_estimated_end
from service.events import EventsApi
from service.jobs_api import JobsApi
from service.retirement import set_retirement
from service.retune import Retuner
from service.status import StatusReader
from service.watch import Watches
from service.wrapping import service_handler
from tuning.v1 import dataset_pb2, tuning_job_pb2, tuning_service_pb2

Context = grpc.aio.ServicerContext[Any, Any]
SERVICE = tuning_service_pb2.DESCRIPTOR.services_by_name["TuningService"]


class TuningServicer:
    """Implements tuning.v1.TuningService."""

    def __init__(
        self,
        api: JobsApi,
        datasets: DatasetsApi,
        status: StatusReader,
        retuner: Retuner,
        *,
        watches: Watches,
        events: EventsApi,
    ) -> None:
        self._watches = watches
        self._events = events
        self._api = api
        self._datasets = datasets
        self._status = status
        self._retuner = retuner

    @property
    def jobs(self) -> JobsApi:
        """The jobs' behaviour, which the Gemini API facade (service.gemini_facade) serves too."""
        return self._api

    @property
    def datasets(self) -> DatasetsApi:
        """The datasets' behaviour, for the facades."""
        return self._datasets

    @property
    def status(self) -> StatusReader:
        """The status read, whose cache GenerateContent reads jobs through too."""
        return self._status

    def _answer(self, job: Job, position: int = 0) -> tuning_job_pb2.TuningJob:
        """The job as answered: with its base model's retirement and its estimated end
        as of now."""
        message = job_to_proto(job, position)
        set_retirement(message, self._api.retirement(job))
        set_estimated_end(message, job, self._api.now())
        return message

    @mapped_errors
    async def CreateTuningJob(
        self, request: CreateCall, context: Context
    ) -> tuning_job_pb2.TuningJob:
        job, position = await self._api.create(current_tenant(), request)
        return self._answer(job, position)

    @mapped_errors
    async def RetuneTuningJob(
        self, request: tuning_service_pb2.RetuneTuningJobRequest, context: Context
    ) -> tuning_job_pb2.TuningJob:
        job, position = await self._retuner.retune(current_tenant(), request)
        return self._answer(job, position)

    @mapped_errors
    async def GetTuningJob(
        self, request: tuning_service_pb2.GetTuningJobRequest, context: Context
    ) -> bytes:
        """The serialized TuningJob (see service.status), sent as it is."""
        return await self._status.answer(current_tenant(), request.name)

    @mapped_errors
    async def ListTuningJobEvents(
        self, request: tuning_service_pb2.ListTuningJobEventsRequest, context: Context
    ) -> tuning_service_pb2.ListTuningJobEventsResponse:
        return await self._events.list(current_tenant(), request)

    @mapped_stream_errors
    async def WatchTuningJob(
        self, request: tuning_service_pb2.WatchTuningJobRequest, context: Context
    ) -> AsyncGenerator[tuning_service_pb2.WatchTuningJobResponse | bytes]:
        answers = self._watches.watch(current_tenant(), request)
        async with contextlib.aclosing(answers):
            async for answer in answers:
                yield answer

    @mapped_errors
    async def ListTuningJobs(
        self, request: tuning_service_pb2.ListTuningJobsRequest, context: Context
    ) -> tuning_service_pb2.ListTuningJobsResponse:
        jobs, token = await self._api.list(
            current_tenant(),
            page_size=request.page_size,
            page_token=request.page_token,
            filter_text=request.filter,
        )
        messages = [self._answer(j, await self._api.queue_position(j)) for j in jobs]
        return tuning_service_pb2.ListTuningJobsResponse(
            tuning_jobs=messages, next_page_token=token
        )

    @mapped_errors
    async def CancelTuningJob(
        self, request: tuning_service_pb2.CancelTuningJobRequest, context: Context
    ) -> tuning_job_pb2.TuningJob:
        return self._answer(await self._api.cancel(current_tenant(), request.name))

    @mapped_errors
    async def DeleteTuningJob(
        self, request: tuning_service_pb2.DeleteTuningJobRequest, context: Context
    ) -> empty_pb2.Empty:
        await self._api.delete(current_tenant(), request.name)
        return empty_pb2.Empty()

    @mapped_errors
    async def UploadDataset(
        self,
        requests: AsyncIterator[tuning_service_pb2.UploadDatasetRequest],
        context: Context,
    ) -> dataset_pb2.Dataset:
        return dataset_to_proto(await self._datasets.upload(current_tenant(), requests))

    @mapped_errors
    async def GetDataset(
        self, request: tuning_service_pb2.GetDatasetRequest, context: Context
    ) -> dataset_pb2.Dataset:
        return dataset_to_proto(await self._datasets.get(current_tenant(), request.name))

    @mapped_errors
    async def ListDatasets(
        self, request: tuning_service_pb2.ListDatasetsRequest, context: Context
    ) -> tuning_service_pb2.ListDatasetsResponse:
        records, token = await self._datasets.list(
            current_tenant(), page_size=request.page_size, page_token=request.page_token
        )
        return tuning_service_pb2.ListDatasetsResponse(
            datasets=[dataset_to_proto(r) for r in records], next_page_token=token
        )

    @mapped_errors
    async def DeleteDataset(
        self, request: tuning_service_pb2.DeleteDatasetRequest, context: Context
    ) -> empty_pb2.Empty:
        await self._datasets.delete(current_tenant(), request.name)
        return empty_pb2.Empty()


# CreateTuningJob gets its own parser: it reads only the request's head, and leaves the
# rest to be parsed off the event loop (service.create_preparation).
_PARSERS: dict[str, Any] = {"CreateTuningJob": read_head}


def generic_handler(servicer: TuningServicer) -> grpc.GenericRpcHandler:
    """The TuningService's method handlers (service.wrapping.service_handler)."""
    return service_handler(SERVICE, servicer, _PARSERS)
