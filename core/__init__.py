"""What the API (`service`) and the workers (`worker`) share, grouped by concern.

Everything here is used by both processes; code only one of them needs lives in that
process's own package. Four sub-packages and one module:

    core/
      errors.py      the error catalogue: the domain error tree, every stable reason,
                     and the one mapping to google.rpc.Status (API answers and job errors)
      domain/        the job as data, with no I/O: the record (job), its states, the
                     state machine (lifecycle), what an upstream says (upstream), quotas
      redis/         everything stored in Redis: the client and its error translation,
                     key names (keys), the Lua scripts (scripts), the job store, the
                     schedule, admission and the fleet's token bucket
      security/      tenants and their secrets: the tenants file, credentials sealed in
                     Redis, AES-GCM keys, OAuth authorized_user files, mounted secret
                     files, and google-auth's transport over httpx
      runtime/       what makes a process: settings, logs, metrics, health, signals,
                     the command line and the clock
"""
