"""A chaos harness for consumer groups: seeded faults, real processes, a checker that knows only
what the public SDK and the processes' logs show (in the spirit of Jepsen's Kafka workload).

Run it from the repository root: ``python -m tests.chaos --seed 7 --duration 60`` (``--help``
lists the options; ``__main__`` has more examples). Modules, one idea each:

``offsets``   the only code that knows what an offset looks like (stream ID or integer)
``events``    the log format: one append-only JSON-lines file per process
``procs``     child processes in sessions of their own, killed with the harness
``server``    the broker process (AOF, fsync always), restartable on the same port and data
``proxy``     a TCP proxy process the harness can cut or use to isolate one worker
``compat``    the consumer API the harness targets, and its fallbacks for older SDKs
``producer``  the keyed producer worker (logs what was acknowledged)
``member``    the group member worker (logs deliveries, commits, seeks) and its broken modes
``cluster``   broker + proxy + workers, slots and incarnations, restarts
``faults``    the seeded fault injector
``controls``  deliberately broken members and how a catch is traced to them
``history``   logs read back as typed history, and the records each partition is known to hold
``anomaly``   the classes of anomaly, and one anomaly
``check``     the checker: lost, order, duplicate, orphan, and the verdict over all classes
``ownership`` tenures, and the ownership checks: split, zombie
``poison``    the poison-record workload's consumer (max_deliveries; fails or crashes on poison
              records) and its broken modes
``dead_letters`` that workload's checks (the dead-letter topic holds exactly the poison records:
              dlq-innocent, dlq-missing, dlq-twice, dlq-lost) and its drain
``relay``     the relay worker (``facade.relay`` itself, or a broken relay for the controls)
``relay_check`` the relay workload's checker: lost, duplicate, order, stuck in the destination
``relay_run`` one run of the relay workload (``python -m tests.chaos --workload relay``)
``run``       one run, start to verdict
``report``    figures, as JSON and text

New workloads fit the mould the poison-record (``--poison N``) and relay (``--workload relay``)
workloads follow: a worker module that logs in this format with a ``start`` event naming its role
(its raw events are kept in ``History.events``; a reader for that role in ``history.READERS`` can
type them), its own checks (``check.check`` judges deliveries to group members and takes extra
checks with ``check.check(..., extra=...)``, which add their own anomaly classes; the relay's
checks judge the destination), and slots for its processes in ``Cluster`` (``Cluster`` starts any
worker module through a proxy route of its own; ``relay_run.RelayCluster`` starts relays where
members would be, so restarts and the single-process faults of ``faults.Injector`` apply to them
unchanged).
"""
