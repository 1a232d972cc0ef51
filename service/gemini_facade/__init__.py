"""The Gemini API's tuning surface, served on the platform's own gRPC server.

Teams with code written against Google's tuning guide (`google.generativeai`'s
`create_tuned_model`, `get_tuned_model`, `GenerativeModel(...).generate_content`) point
it at the platform, with their platform token as the API key, and it runs on whichever
provider their tenant has. The wire contract is Google's own: the messages are the ones
Google's `google-ai-generativelanguage` package defines (its descriptors and serializers,
`methods.py`), so a client of that surface cannot tell the difference in shape.

A tuned model here is a tenant's tuning job (`models.py`): `tunedModels/{id}` names the
job, the create's `tuned_model_id` is unique per tenant (a repeat is ALREADY_EXISTS, as
Google answers), and every rule of the jobs (validation, quotas, tenancy) is the
TuningService's, applied by the same code.
"""
