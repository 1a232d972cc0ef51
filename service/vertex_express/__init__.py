"""The Vertex AI express-mode facade: tuningJobs over HTTP for google-genai.

google-genai's `genai.Client(vertexai=True, api_key=<platform token>,
http_options=HttpOptions(base_url=<the facade>))` speaks Vertex AI's REST API in its
"express" form (`/v1beta1/tuningJobs`, the key in `x-goog-api-key`); this package serves
that shape from the API process, mapped onto the platform's own jobs:

    POST /v1beta1/tuningJobs                          tunings.tune     JobsApi.create
    GET  /v1beta1/tuningJobs?pageSize&pageToken&filter tunings.list    JobsApi.list
    GET  /v1beta1/{job name}                          tunings.get      StatusReader.answer
    POST /v1beta1/{job name}:cancel                   tunings.cancel   JobsApi.cancel
    POST /v1beta1/{endpoint}:generateContent          models.generate_content
    POST /v1beta1/{endpoint}:streamGenerateContent    models.generate_content_stream
                                                                       GenerationApi

`names` (names and paths), `jobs_json` and `generate_json` (the JSON mappings),
`facade` (the routes over the platform's behaviour), `server` (authentication, bounds,
errors), `errors` (Google's error envelope), `listener` (start and stop).
"""
