"""Operations endpoints: health checks for load balancers, humans and monitors."""
