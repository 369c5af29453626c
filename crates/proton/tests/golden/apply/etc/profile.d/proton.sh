# Written by Proton: kubectl on the gateway uses K3s's admin kubeconfig.
export KUBECONFIG=/etc/rancher/k3s/k3s.yaml
