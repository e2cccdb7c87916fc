//! Pod and container security settings: the Kubernetes "restricted" Pod
//! Security Standard, so an OrderShop runs in a namespace that enforces it.

use k8s_openapi::api::core::v1::{
    Capabilities, PodSecurityContext, SeccompProfile, SecurityContext,
};

/// UID/GID of the OrderShop image (distroless `nonroot`).
pub(super) const ORDERSHOP_UID: i64 = 65532;
/// UID/GID of the `redis` user in the official Redis images.
pub(super) const REDIS_UID: i64 = 999;

/// Pod security context for a non-root `uid`; `fs_group` lets it write its volume.
pub(super) fn pod(uid: i64, fs_group: bool) -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(uid),
        run_as_group: Some(uid),
        fs_group: fs_group.then_some(uid),
        seccomp_profile: Some(runtime_default()),
        ..PodSecurityContext::default()
    }
}

/// Container security context: no privilege escalation, no capabilities,
/// read-only root file system.
pub(super) fn container() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: None,
        }),
        seccomp_profile: Some(runtime_default()),
        ..SecurityContext::default()
    }
}

fn runtime_default() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".into(),
        localhost_profile: None,
    }
}
