# chat-api's Deployment and Services in Terraform (hashicorp/kubernetes provider), as the note
# keeps them, with the fields ramp changes left to ramp: without these ignore_changes, every
# `terraform apply` would un-pause the Deployment (the Deployment controller then rolls the
# new image out by itself, past ramp's steps, until ramp pauses it again) and take ramp's
# annotations and Service selectors away.
#
# What ramp writes on a Deployment it manages (spec.workloadRef):
#   spec.paused                        true between rollouts and while a canary, preview or
#                                      rolling-update pause runs (the Deployment controller
#                                      must not roll a new template by itself)
#   ramp.dev/paused-by, ramp.dev/managed-by   the Rollout that paused it and manages it
#   ramp.dev/undone-revision           a rolling update ramp undid
#   ramp.dev/change-cause-template     beside kubernetes.io/change-cause after `kubectl ramp
#                                      undo` (the provider already ignores *.kubernetes.io/*)
# and on the stable, canary, preview and active Services the pod-template-hash of the
# revision each one selects. ramp never changes replicas. The pod template is yours: change
# the image here, and ramp rolls it out. (After ramp undoes a rolling update, the Deployment
# holds the previous image again: the next apply shows the new image as a change and rolls it
# out again; set chat_api_image back to the old tag instead.)

variable "chat_api_image" {
  type    = string
  default = "123456789012.dkr.ecr.us-east-1.amazonaws.com/carepath-chat-api:v1.0"
}

resource "kubernetes_deployment_v1" "chat_api" {
  metadata {
    name      = "chat-api"
    namespace = "carepath-demo"
    labels    = { app = "chat-api" }
  }

  # apply waits until ramp promotes the new image, and fails when ramp aborts it (the
  # Deployment's ProgressDeadlineExceeded, as `kubectl rollout status`). With the canary's
  # pause for a human, set it to false and watch with `kubectl ramp get -w`.
  wait_for_rollout = true
  timeouts {
    create = "30m"
    update = "30m"
  }

  spec {
    replicas                  = 3
    progress_deadline_seconds = 600
    selector {
      match_labels = { app = "chat-api" }
    }
    strategy {
      type = "RollingUpdate"
      rolling_update {
        max_surge       = 1
        max_unavailable = 0
      }
    }
    template {
      metadata {
        labels = { app = "chat-api", "app.kubernetes.io/name" = "chat-api" }
        annotations = {
          "prometheus.io/scrape" = "true"
          "prometheus.io/port"   = "8000"
          "prometheus.io/path"   = "/metrics"
        }
      }
      spec {
        termination_grace_period_seconds = 60
        container {
          name  = "chat-api"
          image = var.chat_api_image
          port {
            name           = "http"
            container_port = 8000
          }
          readiness_probe {
            http_get {
              path = "/healthz"
              port = "http"
            }
            period_seconds = 5
          }
          resources {
            requests = { cpu = "500m", memory = "512Mi" }
            limits   = { memory = "1Gi" }
          }
        }
      }
    }
  }

  lifecycle {
    ignore_changes = [
      spec[0].paused,
      # ramp.dev/paused-by, managed-by, undone-revision, change-cause-template. (Ignoring
      # single keys, metadata[0].annotations["ramp.dev/paused-by"], works only when this
      # resource sets annotations of its own.)
      metadata[0].annotations,
    ]
  }
}

# The Services ramp points at one revision (20-services.yaml; chat-api itself under the
# blue-green). Each one the same way:
resource "kubernetes_service_v1" "chat_api_stable" {
  metadata {
    name      = "chat-api-stable"
    namespace = "carepath-demo"
  }
  spec {
    selector = { app = "chat-api" }
    port {
      name        = "http"
      port        = 80
      target_port = "http"
    }
  }
  lifecycle {
    ignore_changes = [
      spec[0].selector["pod-template-hash"],
    ]
  }
}
