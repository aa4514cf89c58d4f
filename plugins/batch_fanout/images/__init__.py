"""Container images: build the image folders of a containers directory with the names and tags the job
definitions use (``batch-fanout images build``), and the container engines (podman, docker) that build
and run them, with what a VM without some capabilities needs given per invocation."""
