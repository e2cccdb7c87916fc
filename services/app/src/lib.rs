//! OrderShop's services: domain services, sagas, read model, CRM, mail and the API gateway.
