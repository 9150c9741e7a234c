# The lab network: dom0 and the PV domUs on one bridge with fixed addresses. The addresses are from TEST-NET-1
# (RFC 5737), which no real network routes; QEMU gives the lab no network card, so nothing leaves it.
BRIDGE=xenbr0
DOM0_IP=192.0.2.1
DOMU_NAMES="domU1 domU2"
declare -A DOMU_IP=([domU1]=192.0.2.11 [domU2]=192.0.2.12)
declare -A DOMU_MAC=([domU1]=00:16:3e:00:00:11 [domU2]=00:16:3e:00:00:12)
DOMU_MEM_MB=256
DOMU_VCPUS=2          # vCPUs per domU (fastivc.domU_vcpus=N on dom0's command line overrides): SMP, so races can show
DOMU_BOOT_TIMEOUT=120
