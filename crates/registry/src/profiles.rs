//! The registry's profiles: replaced as a whole on reload, each seen through its latest
//! [`View`] of the catalogue.

use std::sync::Arc;

use crate::sync::lock;
use crate::{Profile, Registry, RegistryEvent, View};

impl Registry {
    /// Replaces the profiles. Announces [`RegistryEvent::ProfilesChanged`] when they differ from
    /// the ones in place.
    pub fn set_profiles(&self, profiles: Vec<Profile>) {
        let old = self.inner.profiles.load_full();
        let same = old.len() == profiles.len() && old.iter().zip(&profiles).all(|(a, b)| **a == *b);
        if same {
            return;
        }
        self.inner
            .profiles
            .store(Arc::new(profiles.into_iter().map(Arc::new).collect()));
        let _ = self.inner.events.send(RegistryEvent::ProfilesChanged);
    }

    /// The profiles, in config order.
    pub fn profiles(&self) -> Vec<Arc<Profile>> {
        self.inner.profiles.load().iter().cloned().collect()
    }

    /// The profile called `name`.
    pub fn profile(&self, name: &str) -> Option<Arc<Profile>> {
        self.inner
            .profiles
            .load()
            .iter()
            .find(|p| p.name == name)
            .cloned()
    }

    /// What the profile `name` shows of the current catalogue; `None` when there is no such
    /// profile. Built once per catalogue snapshot and profile definition.
    pub fn view(&self, name: &str) -> Option<Arc<View>> {
        let profile = self.profile(name)?;
        let catalog = self.catalog();
        let mut views = lock(&self.inner.views);
        if let Some(v) = views.get(name)
            && v.catalog_version == catalog.version
            && Arc::ptr_eq(&v.profile, &profile)
        {
            return Some(v.clone());
        }
        let v = Arc::new(View::build(&catalog, profile));
        views.insert(name.to_owned(), v.clone());
        views.retain(|_, v| v.catalog_version == catalog.version);
        Some(v)
    }
}
