"""The service layer under the notebook steps: what more than one step needs, and no step's own logic.

- :mod:`.objects`: apply, create and delete Kubernetes objects, each with its record;
- :mod:`.clients`: the helm wrapper and the LINSTOR REST client of a session;
- :mod:`.pods`: the one-shot pod runner (wait for a pod or a Job to finish, read its log);
- :mod:`.waits`: readiness the steps wait for (Deployments ready);
- :mod:`.preconditions`: checks before a step's first change that an earlier notebook did its part;
- :mod:`.health`: the "is the cluster healthy" gate before a node is touched.

Step modules import these (and renderers, figures, parsers), never another step module. A service
never imports a step module.
"""
