//! Volumes for the managed Redis where no provisioner can make them.
//!
//! kind and the local cluster's real node have a default StorageClass with a
//! dynamic provisioner. A provisioner cannot serve kwok's fake node (its
//! helper pods never run), and a cluster may have no provisioner at all:
//! there the tests pre-provision a static PersistentVolume bound to the exact
//! claim the StatefulSet will make.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, ObjectReference, PersistentVolume, PersistentVolumeSpec,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{ListParams, ObjectMeta, PostParams};
use kube::{Api, Client};

use crate::namespace::TestNamespace;

/// The StorageClass marked default, if any (then claims without a class get
/// it, and provision themselves on real nodes).
pub async fn default_storage_class(client: &Client) -> Option<String> {
    let classes = Api::<StorageClass>::all(client.clone())
        .list(&ListParams::default())
        .await
        .expect("listing StorageClasses");
    classes
        .items
        .into_iter()
        .find(|c| {
            c.metadata.annotations.as_ref().is_some_and(|a| {
                a.get("storageclass.kubernetes.io/is-default-class")
                    .is_some_and(|v| v == "true")
            })
        })
        .and_then(|c| c.metadata.name)
}

/// Makes sure the managed Redis of OrderShop `shop` in `ns` can bind its
/// data claim (`data-<shop>-redis-0`) of `size`.
pub async fn provide_redis_volume(client: &Client, ns: &mut TestNamespace, shop: &str, size: &str) {
    let default_class = default_storage_class(client).await;
    if default_class.is_some() && !ns.fake_pods {
        return;
    }
    let name = format!("{}-{shop}-redis", ns.name);
    let pv = PersistentVolume {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(BTreeMap::from([(
                "ordershop.io/e2e".to_string(),
                "true".to_string(),
            )])),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeSpec {
            capacity: Some(BTreeMap::from([(
                "storage".to_string(),
                Quantity(size.into()),
            )])),
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            // The claim gets the default class at admission; a PV binds
            // only to a claim of its own class.
            storage_class_name: default_class,
            persistent_volume_reclaim_policy: Some("Retain".into()),
            // Pre-bound: only this claim may take it.
            claim_ref: Some(ObjectReference {
                namespace: Some(ns.name.clone()),
                name: Some(format!("data-{shop}-redis-0")),
                ..ObjectReference::default()
            }),
            // Never mounted: kwok runs no containers.
            host_path: Some(HostPathVolumeSource {
                path: format!("/tmp/ordershop-e2e/{name}"),
                type_: None,
            }),
            ..PersistentVolumeSpec::default()
        }),
        status: None,
    };
    Api::<PersistentVolume>::all(client.clone())
        .create(&PostParams::default(), &pv)
        .await
        .unwrap_or_else(|e| panic!("creating PersistentVolume {name}: {e}"));
    ns.volumes.push(name);
}
