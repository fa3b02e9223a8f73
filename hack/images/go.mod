// The two tiny programs of the local node's images (operator/oncall_operator/devcluster/images.py):
// a memory hog for the OOM demo and tests, and the pod sandbox's pause process. No dependencies,
// so they build without the module proxy.
module oncall-operator/images

go 1.25
